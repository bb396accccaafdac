/**
 * The API's OpenAPI 3.1 document, written by hand (served at /openapi.json). A test checks that
 * every route the app registers under /api/ is described here and the other way round.
 */
const str = { type: 'string' } as const;
const strList = { type: 'array', items: str } as const;
const nullable = (t: string): { type: string[] } => ({ type: [t, 'null'] });

const filterParams = [
  ['human', 'The human the agent acted for (token subject), exact.'],
  ['agent', 'The agent, exact.'],
  ['tenant', 'The tenant, exact.'],
  ['verdict', 'allow, rewrite or deny.'],
  ['kind', 'statement, session_start, session_end or auth_failure.'],
  ['rule', 'A rule id that decided (contained in ruleIds).'],
  ['table', 'A schema-qualified table touched, e.g. public.orders.'],
  ['session', 'A session id.'],
  ['flag', 'A flag, e.g. cross_tenant_attempt.'],
  ['instance', 'A pgwarden instance id.'],
  ['sqlstate', 'The upstream SQLSTATE of the outcome.'],
  ['from', 'ISO 8601 time, inclusive.'],
  ['to', 'ISO 8601 time, exclusive.'],
  ['q', 'Substring of the original SQL, case-insensitive.'],
].map(([name, description]) => ({ name, in: 'query', required: false, description, schema: str }));

const limit = (max: number) => ({
  name: 'limit',
  in: 'query',
  required: false,
  schema: { type: 'integer', minimum: 1, maximum: max },
});

const errors = {
  '400': {
    description: 'Bad parameters',
    content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
  },
  '401': { description: 'No or unknown bearer token' },
  '403': { description: 'Token without the responder role' },
  '503': { description: 'The audit store is unreachable' },
};

const json = (ref: string) => ({ 'application/json': { schema: { $ref: `#/components/schemas/${ref}` } } });

export const openApiDocument = {
  openapi: '3.1.0',
  info: {
    title: 'pgwarden decision log API',
    version: '1',
    description:
      'Search and replay the decisions pgwarden made, for incident responders. Every /api route needs ' +
      '`Authorization: Bearer <token>` with a token from audit.api.tokens that carries the responder role.',
  },
  servers: [{ url: '/' }],
  security: [{ bearer: [] }],
  components: {
    securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
    schemas: {
      Error: {
        type: 'object',
        properties: { error: str, message: str, issues: { type: 'array' } },
        required: ['error'],
      },
      Outcome: {
        type: 'object',
        properties: {
          recordId: str,
          sessionId: str,
          time: str,
          command: nullable('string'),
          rows: nullable('integer'),
          upstreamMicros: { type: 'integer' },
          sqlstate: nullable('string'),
          errorMessage: nullable('string'),
        },
      },
      Decision: {
        type: 'object',
        description:
          'The hashed decision record (schema v1, docs/decision-log.md), its outcome and chain position.',
        properties: {
          v: { type: 'integer' },
          id: str,
          time: str,
          kind: { enum: ['statement', 'session_start', 'session_end', 'auth_failure'] },
          instanceId: str,
          sessionId: str,
          seq: { type: 'integer' },
          human: nullable('string'),
          agent: nullable('string'),
          tenant: nullable('string'),
          roles: strList,
          tokenId: nullable('string'),
          clientAddress: str,
          applicationName: nullable('string'),
          protocol: nullable('object'),
          sql: nullable('string'),
          rewrittenSql: nullable('string'),
          fingerprint: nullable('string'),
          verdict: { enum: ['allow', 'rewrite', 'deny', null] },
          reasons: strList,
          ruleIds: strList,
          tables: strList,
          columns: strList,
          flags: strList,
          error: nullable('object'),
          detail: nullable('string'),
          parameters: nullable('array'),
          judgeMicros: nullable('integer'),
          outcome: { oneOf: [{ $ref: '#/components/schemas/Outcome' }, { type: 'null' }] },
          chain: { type: 'object', properties: { instance: str, seq: { type: 'integer' }, hash: str } },
        },
        required: ['id', 'time', 'kind', 'sessionId', 'seq', 'chain'],
      },
      Page: {
        type: 'object',
        properties: {
          items: { type: 'array', items: { $ref: '#/components/schemas/Decision' } },
          nextCursor: nullable('string'),
        },
        required: ['items', 'nextCursor'],
      },
      Session: {
        type: 'object',
        properties: {
          sessionId: str,
          items: { type: 'array', items: { $ref: '#/components/schemas/Decision' } },
          next: {
            oneOf: [{ type: 'integer' }, { type: 'null' }],
            description: 'the after of the next page; null on the last one',
          },
        },
      },
      Aggregates: {
        type: 'object',
        properties: { by: str, interval: str, buckets: { type: 'array', items: { type: 'object' } } },
      },
      VerifyReport: {
        type: 'object',
        properties: {
          ok: { type: 'boolean' },
          hmac: { type: 'boolean' },
          instances: {
            type: 'array',
            items: {
              type: 'object',
              properties: {
                instance: str,
                ok: { type: 'boolean' },
                checked: { type: 'integer' },
                firstSeq: { type: 'integer' },
                lastSeq: { type: 'integer' },
                delivering: {
                  type: 'string',
                  description:
                    "The running instance's newest entries were not all in the store yet: the chain was checked up to what its shipper had committed",
                },
                problem: {
                  oneOf: [
                    {
                      type: 'object',
                      properties: {
                        kind: {
                          enum: [
                            'altered',
                            'deleted',
                            'reordered',
                            'forged',
                            'truncated',
                            'inserted',
                            'unauthenticated',
                          ],
                        },
                        chainSeq: { type: 'integer' },
                        recordId: nullable('string'),
                        message: str,
                      },
                    },
                    { type: 'null' },
                  ],
                },
              },
            },
          },
        },
      },
    },
  },
  paths: {
    '/api/v1/decisions': {
      get: {
        summary:
          'Search decisions, newest first, with cursor pagination; a page stops at `limit` records or about 4 MiB of them',
        parameters: [
          ...filterParams,
          limit(1000),
          { name: 'cursor', in: 'query', required: false, schema: str },
        ],
        responses: { '200': { description: 'A page', content: json('Page') }, ...errors },
      },
    },
    '/api/v1/decisions/{id}': {
      get: {
        summary: 'One decision',
        parameters: [{ name: 'id', in: 'path', required: true, schema: str }],
        responses: {
          '200': { description: 'The decision', content: json('Decision') },
          '404': { description: 'Unknown id' },
          ...errors,
        },
      },
    },
    '/api/v1/sessions/{id}': {
      get: {
        summary:
          'One session replayed in order (by its sequence numbers), a page at a time (at most `limit` records or about 4 MiB of them)',
        parameters: [
          { name: 'id', in: 'path', required: true, schema: str },
          {
            name: 'after',
            in: 'query',
            description: "records after this sequence number (the previous page's next)",
            schema: { type: 'integer', minimum: -1 },
          },
          { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 1000 } },
        ],
        responses: {
          '200': { description: 'The session', content: json('Session') },
          '404': { description: 'Unknown session' },
          ...errors,
        },
      },
    },
    '/api/v1/aggregates': {
      get: {
        summary:
          'Counts by verdict, human, agent, tenant, rule, table, flag or kind; or over time by verdict',
        parameters: [
          ...filterParams,
          {
            name: 'by',
            in: 'query',
            required: false,
            schema: {
              enum: ['verdict', 'human', 'agent', 'tenant', 'rule', 'table', 'flag', 'kind', 'time'],
            },
          },
          { name: 'interval', in: 'query', required: false, schema: { enum: ['minute', 'hour', 'day'] } },
          limit(1000),
        ],
        responses: { '200': { description: 'Buckets', content: json('Aggregates') }, ...errors },
      },
    },
    '/api/v1/export': {
      get: {
        summary: 'Every matching decision as NDJSON (one Decision per line) or CSV, streamed',
        parameters: [
          ...filterParams,
          { name: 'format', in: 'query', required: false, schema: { enum: ['ndjson', 'csv'] } },
          { name: 'limit', in: 'query', required: false, schema: { type: 'integer', minimum: 1 } },
        ],
        responses: {
          '200': { description: 'The export', content: { 'application/x-ndjson': {}, 'text/csv': {} } },
          ...errors,
        },
      },
    },
    '/api/v1/verify': {
      get: {
        summary:
          'Verify the hash chain of one or every instance; reports the first altered, deleted or reordered record',
        parameters: [{ name: 'instance', in: 'query', required: false, schema: str }],
        responses: {
          '200': { description: 'The report', content: json('VerifyReport') },
          '429': { description: 'A verification is already running; retry after Retry-After seconds' },
          ...errors,
        },
      },
    },
    '/api/v1/instances': {
      get: {
        summary: 'pgwarden instances known to the store, with their last delivered chain position',
        responses: { '200': { description: 'Instances', content: { 'application/json': {} } }, ...errors },
      },
    },
  },
} as const;
