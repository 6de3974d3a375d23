// The error answers of every route, from the error catalogue: each route lists the codes of its own (route
// option `config.errors`); the codes every route, every /v1 route and every route with a body may answer with are
// added here. The OpenAPI document shows each status with its codes.
import type { RouteOptions } from 'fastify';
import type { TSchema } from '@sinclair/typebox';
import { ERRORS, ErrorBody, type ErrorCode } from '@graft/contract';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The catalogue's codes this route answers with, besides those every route may. */
    errors?: readonly ErrorCode[];
  }
}

const EVERY_ROUTE: readonly ErrorCode[] = ['RATE_LIMITED', 'INTERNAL', 'SERVICE_UNAVAILABLE'];
const WITH_INPUT: readonly ErrorCode[] = ['VALIDATION_FAILED'];
const WITH_BODY: readonly ErrorCode[] = ['PAYLOAD_TOO_LARGE', 'UNSUPPORTED_MEDIA_TYPE'];
const BEHIND_AUTH: readonly ErrorCode[] = ['UNAUTHORIZED'];

/** One error body schema per status, described by the codes answered with it. */
export function errorResponses(codes: Iterable<ErrorCode>): Record<number, TSchema> {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of new Set(codes)) {
    const status = ERRORS[code].status;
    if (status !== null) byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  return Object.fromEntries([...byStatus].map(([status, list]) => [status, { ...ErrorBody, description: list.join(', ') }]));
}

/** The codes a route may answer with. */
export function routeErrors(route: Pick<RouteOptions, 'url' | 'method' | 'schema' | 'config'>): ErrorCode[] {
  const schema = route.schema ?? {};
  const methods = [route.method].flat();
  return [
    ...EVERY_ROUTE,
    ...(route.config?.errors ?? []),
    ...(schema.params || schema.querystring || schema.body ? WITH_INPUT : []),
    ...(methods.some((m) => m === 'POST' || m === 'PUT' || m === 'PATCH') ? WITH_BODY : []),
    ...(route.url.startsWith('/v1/') ? BEHIND_AUTH : []),
  ];
}

/** Adds the error answers to a documented route's responses (an onRoute hook). */
export function addErrorResponses(route: RouteOptions): void {
  if (!route.schema || (route.schema as { hide?: boolean }).hide) return;
  route.schema.response = { ...errorResponses(routeErrors(route)), ...(route.schema.response as object | undefined) };
}
