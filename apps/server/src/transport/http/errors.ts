import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { errorCatalog, httpStatusByKind, type ErrorCode, type Problem } from '@bulwark/protocol';
import { isAppError, type Logger } from '../../kernel/index.ts';

export function problem(
  code: ErrorCode,
  opts: { detail?: string; requestId?: string; instance?: string; errors?: Problem['errors'] } = {},
): Problem {
  const spec = errorCatalog[code];
  return {
    type: `https://bulwark.dev/errors/${code}`,
    title: spec.title,
    status: httpStatusByKind[spec.kind],
    code,
    ...(opts.detail !== undefined ? { detail: opts.detail } : {}),
    ...(opts.instance !== undefined ? { instance: opts.instance } : {}),
    ...(opts.requestId !== undefined ? { requestId: opts.requestId } : {}),
    ...(opts.errors !== undefined ? { errors: opts.errors } : {}),
  };
}

export function sendProblem(reply: FastifyReply, p: Problem): FastifyReply {
  return reply.status(p.status).header('content-type', 'application/problem+json; charset=utf-8').send(p);
}

/** Maps every error to problem+json; internal detail goes to the log, never to the client. */
export function errorHandler(logger: Logger) {
  return (err: FastifyError | Error, req: FastifyRequest, reply: FastifyReply) => {
    const base = { requestId: req.id, instance: req.url.split('?')[0] ?? '' };
    if (isAppError(err)) {
      if (err.retryAfterSeconds !== undefined) reply.header('retry-after', String(err.retryAfterSeconds));
      if (err.kind === 'internal')
        logger.error(
          { reqId: req.id, code: err.code, detail: err.detail, err: String(err.cause ?? '') },
          err.message,
        );
      return sendProblem(
        reply,
        problem(err.code, {
          ...base,
          ...(err.message !== errorCatalog[err.code].title ? { detail: err.message } : {}),
          ...(err.errors ? { errors: err.errors } : {}),
        }),
      );
    }
    const fe = err as FastifyError;
    if (fe.validation) {
      return sendProblem(
        reply,
        problem('ERR_VALIDATION', {
          ...base,
          detail: fe.message,
          errors: fe.validation.map((v) => ({
            path: `${fe.validationContext ?? ''}${v.instancePath || ''}`.replace(/\//g, '.'),
            message: v.message ?? 'invalid',
          })),
        }),
      );
    }
    if (fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE')
      return sendProblem(reply, problem('ERR_PAYLOAD_TOO_LARGE', base));
    if (fe.statusCode !== undefined && fe.statusCode >= 400 && fe.statusCode < 500) {
      // Malformed JSON, wrong content type and the like.
      return sendProblem(reply, problem('ERR_VALIDATION', { ...base, detail: fe.message }));
    }
    logger.error({ reqId: req.id, err: err.stack ?? String(err) }, 'unhandled error');
    return sendProblem(reply, problem('ERR_INTERNAL', base));
  };
}
