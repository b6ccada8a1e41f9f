let dateText = '';
let dateSecond = 0;

/**
 * The IMF-fixdate of now for a Date header (RFC 9110 §5.6.7), as node:http writes it
 * (`toUTCString()`), made once per second: the servers that write their own responses
 * (proxy/http/lean-server.ts, src/eaa/h1.ts, src/eaa/h2.ts) add it to every one.
 */
export function httpDate(): string {
  const now = Date.now();
  const second = now - (now % 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateText = new Date(now).toUTCString();
  }
  return dateText;
}
