import { AppError, type HttpRoute } from '../../kernel/index.ts';
import { resourceName } from '../policy/index.ts';
import type { MetricsService } from './service.ts';

/**
 * `GET /api/v1/metrics` in the Prometheus text format, for a scraper holding a token with
 * `metrics:read` (owner, admin, operator and auditor roles have it). The figures are the whole node's,
 * across tenants, so only principals of the platform tenant may read them.
 */
export function metricsRoutes(deps: { metrics: MetricsService; platformTenant: string }): HttpRoute[] {
  return [
    {
      method: 'GET',
      url: '/metrics',
      summary: 'Node metrics in the Prometheus text format (MQTT broker, back-pressure, telemetry queue)',
      tags: ['metrics'],
      action: 'metrics:read',
      resource: (ctx) => resourceName(ctx.principal.tenant, 'metrics', 'node'),
      async handler(ctx) {
        if (ctx.principal.tenant !== deps.platformTenant) {
          throw new AppError('ERR_POLICY_DENIED', 'node metrics are readable from the platform tenant only');
        }
        // A string body goes out as text/plain, which Prometheus reads as text format 0.0.4.
        return deps.metrics.render();
      },
    },
  ];
}
