// The OpenAPI 3.1 document of the API (GET /openapi.json), with each job kind's params schema from
// the kinds table, so the document and the validation cannot disagree.
import { KINDS, paramsSchema, type Schema } from './kinds.js';
import { MODEL_NAME } from './models.js';
import { JOB_KINDS } from './store.js';

const json = (schema: Schema, description = 'OK') => ({
  description,
  content: { 'application/json': { schema } },
});
const ERROR: Schema = {
  type: 'object',
  properties: {
    error: {
      type: 'object',
      properties: { code: { type: 'string' }, message: { type: 'string' }, hint: { type: 'string' } },
    },
  },
};
const JOB: Schema = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    kind: { type: 'string', enum: JOB_KINDS },
    params: { type: 'object' },
    state: { type: 'string', enum: ['queued', 'running', 'succeeded', 'failed', 'cancelled'] },
    idempotencyKey: { type: ['string', 'null'] },
    attempts: { type: 'integer' },
    maxAttempts: { type: 'integer' },
    progress: {},
    result: {},
    error: { type: ['string', 'null'] },
  },
};
const MODEL: Schema = {
  type: 'object',
  properties: {
    name: { type: 'string' },
    path: { type: 'string' },
    source: { type: 'string', enum: ['registered', 'uploaded'] },
  },
};
const ID = [{ name: 'id', in: 'path', required: true, schema: { type: 'integer', minimum: 1 } }];
const NAME = [
  { name: 'name', in: 'path', required: true, schema: { type: 'string', pattern: MODEL_NAME.source } },
];
const errors = {
  '400': json(ERROR, 'invalid request'),
  '401': json(ERROR, 'no valid bearer token'),
  '404': json(ERROR, 'not found'),
  '429': json(ERROR, 'rate limited'),
};

export function openApi(): object {
  const submit: Schema = {
    oneOf: JOB_KINDS.map((kind) => ({
      type: 'object',
      title: kind,
      description: KINDS[kind].summary,
      additionalProperties: false,
      required: ['kind'],
      properties: {
        kind: { const: kind },
        params: paramsSchema(kind),
        idempotencyKey: { type: 'string', minLength: 1, maxLength: 200 },
        maxAttempts: { type: 'integer', minimum: 1, maximum: 10 },
      },
    })),
  };
  return {
    openapi: '3.1.0',
    info: { title: 'Sparsekit server', version: '1' },
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    security: [{ bearer: [] }],
    paths: {
      '/health': {
        get: {
          summary: 'liveness (no token needed)',
          security: [],
          responses: { '200': json({ type: 'object' }) },
        },
      },
      '/openapi.json': { get: { summary: 'this document', responses: { '200': json({ type: 'object' }) } } },
      '/kinds': {
        get: {
          summary: 'the job kinds and their params schemas',
          responses: { '200': json({ type: 'object' }) },
        },
      },
      '/models': {
        get: { summary: 'list models', responses: { '200': json({ type: 'object' }), ...errors } },
        post: {
          summary: 'register a folder under the allowed root',
          requestBody: {
            content: {
              'application/json': {
                schema: {
                  type: 'object',
                  required: ['name', 'path'],
                  properties: { name: { type: 'string' }, path: { type: 'string' } },
                },
              },
            },
          },
          responses: { '201': json(MODEL, 'registered'), '409': json(ERROR, 'the name is taken'), ...errors },
        },
      },
      '/models/{name}': {
        parameters: NAME,
        get: { summary: 'a model: its files and config.json', responses: { '200': json(MODEL), ...errors } },
        put: {
          summary:
            'upload a model folder as a tar stream (size- and entry-limited; ?replace=true replaces an upload)',
          requestBody: { content: { 'application/x-tar': { schema: { type: 'string', format: 'binary' } } } },
          responses: {
            '201': json(MODEL, 'uploaded'),
            '413': json(ERROR, 'over the upload limits'),
            ...errors,
          },
        },
      },
      '/jobs': {
        get: {
          summary: 'list jobs',
          parameters: [
            { name: 'state', in: 'query', schema: { type: 'string' } },
            { name: 'limit', in: 'query', schema: { type: 'integer' } },
          ],
          responses: { '200': json({ type: 'object' }), ...errors },
        },
        post: {
          summary: 'submit a job (the same idempotencyKey returns the job it made, with 200)',
          requestBody: { content: { 'application/json': { schema: submit } } },
          responses: {
            '201': json(JOB, 'created'),
            '200': json(JOB, 'made earlier with this key'),
            ...errors,
          },
        },
      },
      '/jobs/{id}': { parameters: ID, get: { summary: 'a job', responses: { '200': json(JOB), ...errors } } },
      '/jobs/{id}/cancel': {
        parameters: ID,
        post: {
          summary: 'cancel: a queued job at once, a running one by a signal to its worker',
          responses: { '200': json(JOB), ...errors },
        },
      },
      '/jobs/{id}/events': {
        parameters: ID,
        get: {
          summary:
            'Server-Sent Events: `job` (the job, on each change) and `log` (each progress line), until it is final',
          responses: {
            '200': { description: 'event stream', content: { 'text/event-stream': {} } },
            ...errors,
          },
        },
      },
      '/jobs/{id}/log': {
        parameters: ID,
        get: {
          summary: "the job's log",
          responses: { '200': { description: 'text', content: { 'text/plain': {} } }, ...errors },
        },
      },
      '/jobs/{id}/result': {
        parameters: ID,
        get: { summary: "the job's result JSON", responses: { '200': json({ type: 'object' }), ...errors } },
      },
      '/jobs/{id}/files/{path}': {
        parameters: [...ID, { name: 'path', in: 'path', required: true, schema: { type: 'string' } }],
        get: {
          summary: "a file of the job's folder (reports: report/report.html, .svg, .json)",
          responses: { '200': { description: 'the file' }, ...errors },
        },
      },
      '/jobs/{id}/output.tar': {
        parameters: ID,
        get: {
          summary: 'the folder a prune, convert or sae-train job wrote, as a tar stream',
          responses: { '200': { description: 'tar', content: { 'application/x-tar': {} } }, ...errors },
        },
      },
    },
  };
}
