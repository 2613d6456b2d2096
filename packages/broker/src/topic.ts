// Topic names and filters (MQTT 3.1.1 §4.7, MQTT 5 §4.7, §4.8.2). UTF-8 well-formedness and the
// absence of U+0000 are checked by the packet reader before a string gets here.

const PLUS = 0x2b;
const HASH = 0x23;
const SLASH = 0x2f;
const DOLLAR = 0x24;

/** True when `topic` is a valid PUBLISH topic name. */
export function isValidTopicName(topic: string, maxLevels: number): boolean {
  // [MQTT-4.7.3-1] topic names are at least one character long.
  if (topic.length === 0) return false;
  let levels = 1;
  for (let i = 0; i < topic.length; i++) {
    const c = topic.charCodeAt(i);
    // [MQTT-3.3.2-2] [MQTT-4.7.1-1] wildcards are not allowed in topic names.
    if (c === PLUS || c === HASH) return false;
    if (c === SLASH && ++levels > maxLevels) return false;
  }
  return true;
}

/** True when `filter` (without a `$share/` prefix) is a valid topic filter. */
export function isValidTopicFilter(filter: string, maxLevels: number): boolean {
  // [MQTT-4.7.3-1]
  if (filter.length === 0) return false;
  let levels = 1;
  const last = filter.length - 1;
  for (let i = 0; i <= last; i++) {
    const c = filter.charCodeAt(i);
    if (c === SLASH) {
      if (++levels > maxLevels) return false;
    } else if (c === HASH) {
      // [MQTT-4.7.1-2] '#' occupies a whole level and is the last character.
      if (i !== last || (i > 0 && filter.charCodeAt(i - 1) !== SLASH)) return false;
    } else if (c === PLUS) {
      // [MQTT-4.7.1-3] '+' occupies a whole level.
      if ((i > 0 && filter.charCodeAt(i - 1) !== SLASH) || (i < last && filter.charCodeAt(i + 1) !== SLASH)) {
        return false;
      }
    }
  }
  return true;
}

export interface ParsedFilter {
  /** The filter matched against topics (the part after `$share/{group}/`). */
  filter: string;
  /** Share name for `$share/{group}/{filter}`, undefined otherwise. */
  group: string | undefined;
}

const SHARE_PREFIX = '$share/';

/** Splits a subscription filter into group and filter; undefined when invalid. */
export function parseSubscriptionFilter(raw: string, maxLevels: number): ParsedFilter | undefined {
  if (raw.startsWith(SHARE_PREFIX)) {
    const slash = raw.indexOf('/', SHARE_PREFIX.length);
    // [MQTT-4.8.2-1] v5 the ShareName is at least one character, without '/', '+' or '#'.
    if (slash <= SHARE_PREFIX.length) return undefined;
    const group = raw.slice(SHARE_PREFIX.length, slash);
    if (group.includes('+') || group.includes('#')) return undefined;
    const filter = raw.slice(slash + 1);
    // [MQTT-4.8.2-2] v5 a Topic Filter follows the ShareName.
    if (!isValidTopicFilter(filter, maxLevels)) return undefined;
    return { filter, group };
  }
  if (!isValidTopicFilter(raw, maxLevels)) return undefined;
  return { filter: raw, group: undefined };
}

/** True when the filter contains a wildcard. */
export function hasWildcard(filter: string): boolean {
  return filter.includes('+') || filter.includes('#');
}

/**
 * Whether `topic` matches `filter` (no `$share/` prefix). Used off the hot path (retained messages);
 * routing uses the subscription tree.
 */
export function topicMatches(filter: string, topic: string): boolean {
  // [MQTT-4.7.2-1] filters starting with a wildcard do not match topics starting with '$'.
  if (topic.charCodeAt(0) === DOLLAR && (filter.charCodeAt(0) === PLUS || filter.charCodeAt(0) === HASH)) {
    return false;
  }
  let f = 0;
  let t = 0;
  const fl = filter.length;
  const tl = topic.length;
  while (f < fl) {
    const c = filter.charCodeAt(f);
    if (c === HASH) return true;
    if (c === PLUS) {
      while (t < tl && topic.charCodeAt(t) !== SLASH) t++;
      f++;
    } else {
      const fEnd = indexOfSlash(filter, f);
      const tEnd = indexOfSlash(topic, t);
      if (t > tl || fEnd - f !== tEnd - t || filter.slice(f, fEnd) !== topic.slice(t, tEnd)) return false;
      f = fEnd;
      t = tEnd;
    }
    // Both at end of a level.
    if (f >= fl) return t >= tl;
    // filter has '/', topic must too.
    if (t >= tl) {
      // 'a/#' matches 'a' [MQTT-4.7.1-2]
      return filter.length === f + 2 && filter.charCodeAt(f + 1) === HASH;
    }
    f++;
    t++;
  }
  return t >= tl;
}

function indexOfSlash(s: string, from: number): number {
  const i = s.indexOf('/', from);
  return i === -1 ? s.length : i;
}
