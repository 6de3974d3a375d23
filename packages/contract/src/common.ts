// Shapes every part of the API shares: the error body, ids, pagination.
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { ERROR_CODES, type ErrorCode } from './errors';

/** Every error answer: a code of the catalogue, a message that says what to fix, and details where they help. */
export const ErrorBody = Type.Object(
  {
    error: Type.Object({
      code: Type.Unsafe<ErrorCode>({ type: 'string', enum: ERROR_CODES, description: 'a code of the error catalogue' }),
      message: Type.String(),
      details: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    }),
  },
  { title: 'Error' },
);
export type ErrorBody = Static<typeof ErrorBody>;

/** Ids the service gives out: a type prefix and 16 base-36 characters. */
export const ID_PATTERN = {
  ds: '^ds_[a-z0-9]{1,64}$',
  job: '^job_[a-z0-9]{1,64}$',
  mdl: '^mdl_[a-z0-9]{1,64}$',
  img: '^img_[0-9a-f]{20}$',
} as const;

const ID_REGEX = Object.fromEntries(Object.entries(ID_PATTERN).map(([kind, pattern]) => [kind, new RegExp(pattern)])) as Record<keyof typeof ID_PATTERN, RegExp>;

/** Whether `s` is an id of that kind (ID_PATTERN). */
export const isId = (kind: keyof typeof ID_PATTERN, s: string): boolean => ID_REGEX[kind].test(s);

export const IdParams = (kind: keyof typeof ID_PATTERN) => Type.Object({ id: Type.String({ pattern: ID_PATTERN[kind] }) });

export const Pagination = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 50 })),
  offset: Type.Optional(Type.Integer({ minimum: 0, default: 0 })),
});

/** A page of a list. */
export const Page = <T extends TSchema>(item: T) =>
  Type.Object({ items: Type.Array(item), total: Type.Integer(), limit: Type.Integer(), offset: Type.Integer() });

/** A whole list. */
export const List = <T extends TSchema>(item: T) => Type.Object({ items: Type.Array(item), total: Type.Integer() });

export const Split = Type.Union([Type.Literal('train'), Type.Literal('validation'), Type.Literal('test')]);
export type Split = Static<typeof Split>;

/** A body that is not JSON: a file, an image, a picture (its bytes as a buffer, a stream or a string). */
export const Binary = (mediaTypes: readonly string[], description: string) => ({
  description,
  content: Object.fromEntries(
    mediaTypes.map((t) => [t, { schema: Type.Unsafe<Uint8Array | string | { pipe(...args: never[]): unknown }>({ type: 'string', format: 'binary' }) }]),
  ),
});

/** An answer without a body (204). */
export const NoContent = (description: string) => Type.Unsafe<void>({ description });

export const Nullable = <T extends TSchema>(schema: T, description?: string) =>
  Type.Union([schema, Type.Null()], description ? { description } : {});
