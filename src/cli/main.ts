import { Command, Option } from 'commander';
import { Agent } from '../agent/agent.ts';
import { loadConfig } from '../config/load.ts';
import { renderDefaultConfig } from '../config/print-defaults.ts';
import type { Config } from '../config/schema.ts';
import { LOG_LEVELS } from '../config/schema.ts';
import { errorMessage, MeshletError } from '../errors.ts';
import { createLogger } from '../log.ts';
import { VERSION } from '../version.ts';
import { runController } from './controller.ts';
import { onShutdownSignals } from './signals.ts';
import { renderStatus } from './status.ts';

/** Exit codes: 0 ok, 1 runtime failure, 2 bad configuration or usage. */
const EXIT_CONFIG = 2;

interface ConfigFlags {
  config?: string;
  set: string[];
  logLevel?: string;
  nodeName?: string;
  adminPort?: string;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** The options every long-running command takes, mapped onto `--set` so one code path validates them. */
function withConfigOptions(cmd: Command): Command {
  return cmd
    .option('-c, --config <file>', 'YAML config file (see `meshlet config --print-defaults`)', process.env.MESHLET_CONFIG)
    .option('--set <path=value>', 'override one config field, e.g. --set dns.port=5353 (repeatable)', collect, [])
    .addOption(new Option('--log-level <level>', 'shorthand for --set log.level=<level>').choices(LOG_LEVELS))
    .option('--node-name <name>', 'shorthand for --set node.name=<name>')
    .option('--admin-port <port>', 'shorthand for --set admin.port=<port>');
}

function configFrom(flags: ConfigFlags): Config {
  const sets = [...flags.set];
  if (flags.logLevel) sets.push(`log.level=${flags.logLevel}`);
  if (flags.nodeName) sets.push(`node.name=${flags.nodeName}`);
  if (flags.adminPort) sets.push(`admin.port=${flags.adminPort}`);
  return loadConfig({ ...(flags.config !== undefined && { file: flags.config }), sets });
}

export function buildProgram(): Command {
  const program = new Command('meshlet')
    .description('A per-node service mesh sidecar for edge Kubernetes clusters')
    .version(VERSION, '-v, --version')
    .showHelpAfterError()
    .configureHelp({ sortSubcommands: true });

  withConfigOptions(
    program.command('agent').description('run the per-node agent (DNS, service proxy, ...); standalone with source.kind=file'),
  ).action(async (flags: ConfigFlags) => {
    const config = configFrom(flags);
    const logger = createLogger({ level: config.log.level });
    const agent = new Agent({ config, logger });
    onShutdownSignals(() => agent.stop(), logger);
    await agent.start();
  });

  withConfigOptions(
    program.command('controller').description('run the control plane: true node status (EdgeNode), no eviction of cut-off nodes'),
  ).action(async (flags: ConfigFlags) => {
    await runController(configFrom(flags));
  });

  program
    .command('status')
    .description('print what a running agent knows, from its admin endpoint')
    .option('--admin <url>', 'admin endpoint of the agent', process.env.MESHLET_ADMIN_URL ?? 'http://127.0.0.1:15090')
    .option('--json', 'print JSON instead of tables')
    .action(async (flags: { admin: string; json?: boolean }) => {
      process.stdout.write(await renderStatus(flags.admin, flags.json === true));
    });

  withConfigOptions(
    program
      .command('config')
      .description('print or check configuration')
      .option('--print-defaults', 'print a complete, commented config with every default')
      .option('--print', 'print the effective config after file, environment and flags'),
  ).action((flags: ConfigFlags & { printDefaults?: boolean; print?: boolean }) => {
    if (flags.printDefaults) {
      process.stdout.write(renderDefaultConfig());
      return;
    }
    const config = configFrom(flags);
    if (flags.print) process.stdout.write(`${JSON.stringify(config, null, 2)}\n`);
    else process.stdout.write(`config ${flags.config ?? '(defaults)'} is valid\n`);
  });

  return program;
}

export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (err) {
    process.stderr.write(`meshlet: ${errorMessage(err)}\n`);
    process.exitCode = err instanceof MeshletError && err.code.startsWith('MESHLET_ERR_CONFIG') ? EXIT_CONFIG : 1;
  }
}

if (import.meta.main) await main(process.argv);
