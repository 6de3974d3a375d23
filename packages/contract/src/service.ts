// Liveness and readiness.
import { Type, type Static } from '@sinclair/typebox';

export const Liveness = Type.Object({ status: Type.Literal('ok') });

/** Each dependency, ok or down; why one is down goes to the log, not to the anonymous caller. */
export const DependencyChecks = Type.Record(Type.String(), Type.Union([Type.Literal('ok'), Type.Literal('down')]));
export type DependencyChecks = Static<typeof DependencyChecks>;

export const Readiness = Type.Object({ status: Type.Literal('ok'), checks: DependencyChecks });
