// The HTTP side of deliveries: one POST, no redirects followed (a redirect could point anywhere, and
// the URL was checked, not its redirect targets), a timeout, and the answer's body discarded.
import { isIP } from 'node:net';
import { AppError } from '../../kernel/index.ts';
import type { WebhookSender } from './model.ts';

export const fetchSender: WebhookSender = {
  async send(url, headers, body, timeoutMs) {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'user-agent': 'bulwark-webhooks/1', ...headers },
      body,
      redirect: 'manual',
      signal: AbortSignal.timeout(timeoutMs),
    });
    await res.body?.cancel().catch(() => {});
    return { status: res.status };
  },
};

const LOOPBACK = (host: string) =>
  host === 'localhost' || host === '[::1]' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);

/**
 * Allowed webhook targets: https, no credentials, never link-local (cloud metadata) or unspecified
 * addresses; loopback only over http and only when `allowInsecureLoopback` (tests, development).
 */
export function checkWebhookUrl(raw: string, allowInsecureLoopback: boolean): URL {
  const bad = (m: string) => new AppError('ERR_WEBHOOK_URL', m);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw bad('not a URL');
  }
  if (url.username || url.password) throw bad('no credentials in the URL');
  const host = url.hostname;
  const bare = host.replace(/^\[|\]$/g, '');
  if (/^169\.254\./.test(bare) || /^fe[89ab]/i.test(bare) || bare === '0.0.0.0' || bare === '::')
    throw bad('link-local and unspecified addresses are not allowed');
  if (isIP(bare) === 4 && /^(0|224|240)\./.test(bare)) throw bad('not a unicast address');
  if (LOOPBACK(host)) {
    if (!allowInsecureLoopback) throw bad('loopback targets are not allowed');
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw bad('http(s) only');
    return url;
  }
  if (url.protocol !== 'https:') throw bad('https only');
  return url;
}
