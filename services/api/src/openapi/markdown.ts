// docs/api.md from the OpenAPI document: every route with its parameters, body and answers, the named types
// (schemas with a `title`, written once under "Types"), and the error catalogue. Deterministic: the same document
// gives the same text, so a test can tell when the file is out of date.
import { ERRORS, ERROR_CODES } from '@graft/contract';
import type { JsonSchema, OpenApiDocument, OpenApiOperation } from './document';

const METHODS = ['get', 'post', 'put', 'patch', 'delete'];

/** Renders schemas as TypeScript-like text, collecting the titled ones it names instead of spelling out. */
class TypeWriter {
  readonly named = new Map<string, JsonSchema>();

  /** The schema as a type; a titled schema below the top is named (and kept for the Types section). */
  text(s: JsonSchema, indent = '', top = true): string {
    if (!top && typeof s.title === 'string') {
      if (!this.named.has(s.title)) this.named.set(s.title, { ...s, nullable: false });
      return s.nullable ? `${s.title} | null` : s.title;
    }
    const t = this.bare(s, indent);
    return s.nullable && !t.endsWith('| null') && t !== 'null' ? `${t} | null` : t;
  }

  private bare(s: JsonSchema, indent: string): string {
    if (s.anyOf || s.oneOf) return this.union(s.anyOf ?? s.oneOf, indent);
    if (s.enum) return s.enum.map((v: unknown) => JSON.stringify(v)).join(' | ');
    if ('const' in s) return JSON.stringify(s.const);
    if (s.type === 'array') return this.array(s, indent);
    if (s.type === 'object' || s.properties || s.patternProperties) return this.object(s, indent);
    if (s.type === 'string' && s.format === 'binary') return 'binary';
    if (s.type === 'integer') return 'integer';
    return typeof s.type === 'string' ? s.type : 'any';
  }

  private union(members: JsonSchema[], indent: string): string {
    const parts = members.map((m) => this.text(m, indent, false));
    return [...new Set(parts)].join(' | ');
  }

  private array(s: JsonSchema, indent: string): string {
    const tuple = s.prefixItems ?? (Array.isArray(s.items) ? s.items : null);
    if (tuple) return `[${tuple.map((m: JsonSchema) => this.text(m, indent, false)).join(', ')}]`;
    const item = this.text(s.items ?? {}, indent, false);
    return /[ |]/.test(item) && !item.startsWith('{') ? `(${item})[]` : `${item}[]`;
  }

  private object(s: JsonSchema, indent: string): string {
    const props = Object.entries((s.properties ?? {}) as Record<string, JsonSchema>);
    const pattern = Object.values((s.patternProperties ?? {}) as Record<string, JsonSchema>)[0] ?? (typeof s.additionalProperties === 'object' ? s.additionalProperties : null);
    if (!props.length) return pattern ? `{ [key: string]: ${this.text(pattern, indent, false)} }` : '{}';
    const inner = `${indent}  `;
    const required = new Set<string>(s.required ?? []);
    const lines = props.map(([k, v]) => {
      const note = notes(v);
      return `${inner}${k}${required.has(k) ? '' : '?'}: ${this.text(v, inner, false)};${note ? ` // ${note}` : ''}`;
    });
    return `{\n${lines.join('\n')}\n${indent}}`;
  }
}

/** What a schema says beyond its type: description, default, range, pattern, format. */
function notes(s: JsonSchema): string {
  const bits: string[] = [];
  if (s.description && !s.title) bits.push(String(s.description));
  if (s.minimum !== undefined || s.maximum !== undefined || s.exclusiveMinimum !== undefined) {
    const lo = s.exclusiveMinimum !== undefined ? `> ${s.exclusiveMinimum}` : s.minimum;
    bits.push(s.maximum !== undefined ? `${lo ?? ''}..${s.maximum}` : `>= ${lo}`);
  }
  if (s.minLength !== undefined || s.maxLength !== undefined) bits.push(`${s.minLength ?? 0}..${s.maxLength ?? ''} characters`);
  if (s.pattern) bits.push(`pattern ${s.pattern}`);
  if (s.format && s.format !== 'binary') bits.push(s.format);
  if (s.default !== undefined) bits.push(`default ${JSON.stringify(s.default)}`);
  return bits.join('; ').replace(/\s+/g, ' ');
}

const cell = (v: string) => v.replace(/\|/g, '\\|').replace(/\n/g, ' ');

function parameters(op: OpenApiOperation, types: TypeWriter): string[] {
  if (!op.parameters?.length) return [];
  const rows = op.parameters.map(
    (p) =>
      `| \`${p.name}\` | ${p.in} | \`${cell(types.text(p.schema, '', false))}\` | ${p.required ? 'yes' : 'no'} | ${cell(notes({ ...p.schema, description: p.description ?? p.schema.description }))} |`,
  );
  return ['| parameter | in | type | required | notes |', '| --- | --- | --- | --- | --- |', ...rows, ''];
}

function body(op: OpenApiOperation, types: TypeWriter): string[] {
  const content = op.requestBody?.content;
  if (!content) return [];
  return Object.entries(content).flatMap(([media, { schema }]) => [`Body (\`${media}\`):`, '', '```ts', types.text(schema), '```', '']);
}

function responses(op: OpenApiOperation, types: TypeWriter): string[] {
  const rows = Object.entries(op.responses).map(([status, r]) => {
    const content = Object.entries(r.content ?? {});
    const shapes = content.map(([media, { schema }]) => {
      const t = types.text(schema, '', !schema.title);
      return media === 'application/json' ? (t.includes('\n') ? 'JSON (below)' : `\`${t}\``) : `\`${media}\``;
    });
    const isError = Number(status) >= 400;
    const what = isError ? (r.description ?? '') : r.description && r.description !== 'Default Response' ? r.description : '';
    return `| ${status} | ${cell(what)} | ${shapes.join(', ') || 'no body'} |`;
  });
  const inline = Object.entries(op.responses)
    .filter(([status]) => Number(status) < 400)
    .flatMap(([status, r]) => {
      const schema = r.content?.['application/json']?.schema;
      const t = schema && !schema.title ? types.text(schema) : '';
      return t.includes('\n') ? [`${status}:`, '', '```ts', t, '```', ''] : [];
    });
  return ['| status | codes, meaning | body |', '| --- | --- | --- |', ...rows, '', ...inline];
}

function route(method: string, path: string, op: OpenApiOperation, types: TypeWriter): string[] {
  return [
    `### ${method.toUpperCase()} ${path}`,
    '',
    ...(op.summary ? [op.summary, ''] : []),
    ...(op.description ? [op.description, ''] : []),
    ...parameters(op, types),
    ...body(op, types),
    ...responses(op, types),
  ];
}

function catalogue(): string[] {
  const rows = ERROR_CODES.map((c) => {
    const e = ERRORS[c];
    return `| \`${c}\` | ${e.status ?? 'job'} | ${e.permanent ? 'yes' : 'no'} | ${cell(e.meaning)} |`;
  });
  return [
    '## Error catalogue',
    '',
    'Every code the service answers with or fails a job with. Status `job`: only a failed job\'s `error.code`. Permanent:',
    'the same request or job fails the same way when retried (fix the input first); the worker retries only the others.',
    '',
    '| code | status | permanent | meaning |',
    '| --- | --- | --- | --- |',
    ...rows,
    '',
  ];
}

/** Types named in the routes, and the types named in them, in order of first mention. */
function typeSection(types: TypeWriter): string[] {
  const out: string[] = ['## Types', ''];
  for (let i = 0; i < types.named.size; i++) {
    const [name, schema] = [...types.named][i]!;
    out.push(`### ${name}`, '', ...(schema.description ? [String(schema.description), ''] : []), '```ts', types.text(schema), '```', '');
  }
  return out;
}

export function apiMarkdown(doc: OpenApiDocument): string {
  const types = new TypeWriter();
  const byTag = new Map<string, string[]>();
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const method of METHODS) {
      const op = ops[method];
      if (!op) continue;
      const tag = op.tags?.[0] ?? 'other';
      byTag.set(tag, [...(byTag.get(tag) ?? []), ...route(method, path, op, types)]);
    }
  }
  const sections = [...byTag].flatMap(([tag, lines]) => [`## ${tag[0]!.toUpperCase()}${tag.slice(1)}`, '', ...lines]);
  return [
    `# ${doc.info.title} ${doc.info.version}: the contract`,
    '',
    '<!-- Generated from the OpenAPI document by `npm run docs:api`; a test fails when it is out of date. Do not edit. -->',
    '',
    ...(doc.info.description ? [doc.info.description, ''] : []),
    'Send `Authorization: Bearer <api key>` where the service has API keys (every `/v1` route). Every error answer is',
    '`{"error": {"code", "message", "details"?}}` (the `Error` type) with a code of the error catalogue at the end.',
    'The interactive version of this document is served at `/docs`, the OpenAPI document at `/docs/json`.',
    '',
    ...sections,
    ...typeSection(types),
    ...catalogue(),
  ].join('\n');
}
