export { createMetricsService, renderPrometheus, type MetricsService } from './service.ts';
export type { Metric, MetricType, MetricsSources, BrokerCounters } from './model.ts';
export { metricsRoutes } from './http.ts';
