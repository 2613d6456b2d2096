export {
  createWebhookService,
  DEFAULT_WEBHOOK_OPTIONS,
  type SubscriptionInput,
  type WebhookIam,
  type WebhookOptions,
  type WebhookService,
} from './service.ts';
export { createWebhookStore } from './store.ts';
export { checkWebhookUrl, fetchSender } from './deliver.ts';
export { sign, signedHeaders, verify, SECRET_PREFIX } from './sign.ts';
export {
  EVENT_TYPES,
  type EventType,
  type PlatformEvent,
  type WebhookSender,
  type WebhookStore,
} from './model.ts';
export { webhookRoutes } from './http.ts';
