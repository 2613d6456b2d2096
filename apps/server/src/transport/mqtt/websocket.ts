// MQTT over WebSocket (MQTT 5.0 §6) at wss://host:8443/mqtt: an upgrade on the HTTPS listener, handed to
// the same broker as the TLS listener, after the same certificate checks. Node has no WebSocket server
// of its own (only a client), so this uses `ws`, the library MQTT.js itself uses.

import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { createWebSocketStream, WebSocketServer } from 'ws';

export const MQTT_WEBSOCKET_PATH = '/mqtt';

export type Admission =
  { ok: true; handle(stream: Duplex): void } | { ok: false; status: 401 | 403; reason: string };

export interface MqttWebSocket {
  /** For the HTTPS server's 'upgrade' event. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  close(): void;
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
};

function refuse(socket: Duplex, status: number, reason: string): void {
  const body = `${reason}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\nConnection: close\r\nContent-Type: text/plain\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    () => socket.destroy(),
  );
}

export function createMqttWebSocket(opts: {
  /** Largest WebSocket message accepted (an MQTT packet may span messages, but never needs more). */
  maxPayload: number;
  /** Decides from the TLS socket (its client certificate) whether the device may connect. */
  admit(socket: TLSSocket): Admission;
}): MqttWebSocket {
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: opts.maxPayload,
    perMessageDeflate: false,
    // [MQTT-6.0.0-3] the subprotocol is "mqtt".
    handleProtocols: (protocols) => (protocols.has('mqtt') ? 'mqtt' : false),
  });
  return {
    handleUpgrade(req, socket, head) {
      socket.on('error', () => {});
      const path = (req.url ?? '').split('?')[0];
      if (path !== MQTT_WEBSOCKET_PATH) return refuse(socket, 404, 'no WebSocket endpoint here');
      // Devices are not browsers: a page the user visits must not be able to ride on a certificate
      // installed in the browser (cross-site WebSocket hijacking).
      if (req.headers.origin !== undefined) return refuse(socket, 403, 'browser origins are not accepted');
      const offered = String(req.headers['sec-websocket-protocol'] ?? '')
        .split(',')
        .map((s) => s.trim());
      if (!offered.includes('mqtt')) return refuse(socket, 400, 'the WebSocket subprotocol must be mqtt');
      const verdict = opts.admit(socket as TLSSocket);
      if (!verdict.ok) return refuse(socket, verdict.status, verdict.reason);
      wss.handleUpgrade(req, socket, head, (ws) => {
        const stream = createWebSocketStream(ws);
        stream.on('error', () => {});
        verdict.handle(stream);
      });
    },
    close() {
      for (const c of wss.clients) c.terminate();
      wss.close();
    },
  };
}
