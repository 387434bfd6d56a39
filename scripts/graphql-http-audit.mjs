// Runs the GraphQL over HTTP conformance audits of graphql-http (the
// reference implementation) against a running Tollgate, with a bearer token
// so the audits reach the GraphQL layer instead of stopping at
// authentication. Started by graphql-http-audit.sh, which installs the
// pinned packages.
import { serverAudits } from 'graphql-http';

const url = process.env.AUDIT_URL;
const token = process.env.AUDIT_TOKEN;

// Every audit request carries the token. The audits fire faster than a
// free plan's 10 requests a second, so a 429 is waited out (Retry-After)
// and sent again: the audit is about the protocol, not the rate limit.
const fetchFn = async (input, init = {}) => {
  const headers = new Headers(init.headers);
  headers.set('Authorization', `Bearer ${token}`);
  for (let attempt = 0; ; attempt++) {
    const res = await fetch(input, { ...init, headers });
    if (res.status !== 429 || attempt === 10) return res;
    const seconds = Number(res.headers.get('Retry-After')) || 1;
    await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  }
};

let failures = 0;
let warnings = 0;
for (const audit of serverAudits({ url, fetchFn })) {
  const result = await audit.fn();
  if (result.status === 'ok') continue;
  if (result.status === 'error') failures++;
  if (result.status === 'warn') warnings++;
  console.log(`${result.status.toUpperCase()} ${audit.name}: ${result.reason}`);
}
console.log(`graphql-http audit of ${url}: ${failures} MUST failures, ${warnings} SHOULD warnings`);
process.exit(failures > 0 ? 1 : 0);
