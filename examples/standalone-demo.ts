/**
 * `npm start`: the standalone agent on examples/standalone.yaml plus two demo backends, then
 * the commands to try it. No Kubernetes, no root.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent } from '../src/agent/agent.ts';
import { onShutdownSignals } from '../src/cli/signals.ts';
import { loadConfig } from '../src/config/load.ts';
import { createLogger } from '../src/log.ts';
import { startDemoBackend } from './demo-backends.ts';

const here = dirname(fileURLToPath(import.meta.url));
const config = loadConfig({ file: join(here, 'standalone.yaml'), sets: process.argv.slice(2) });
const logger = createLogger({ level: config.log.level });

const backends = [await startDemoBackend('backend-1', 18081), await startDemoBackend('backend-2', 18082)];
const agent = new Agent({ config, logger });
onShutdownSignals(async () => {
  await agent.stop();
  await Promise.all(backends.map((b) => b.close()));
}, logger);
await agent.start();

const names = new Set(agent.modules.map((m) => m.name));
const lines = [
  '',
  'meshlet is running in standalone mode (Ctrl-C to stop). Try, in another terminal:',
  '',
  `  bin/meshlet status --admin ${agent.admin.url}`,
];
if (names.has('dns')) {
  lines.push(`  dig @${config.dns.address} -p ${config.dns.port} web.default.svc.${config.cluster.domain}`);
}
if (names.has('proxy')) {
  lines.push(`  curl http://${config.proxy.address}:8080/`);
}
if (!names.has('dns') || !names.has('proxy')) {
  // Turned off in the config (dns.enabled / proxy.enabled): show what the agent knows instead.
  lines.push(`  curl ${agent.admin.url}/debug/services`);
}
lines.push('', `  Edit ${config.source.file.path} and watch the agent reload it.`, '');
process.stdout.write(`${lines.join('\n')}\n`);
