import { execFile } from 'node:child_process';
import type { Family } from './rules.ts';

/** Runs a command with optional stdin; rejects with stderr in the message. Injectable for tests. */
export type CommandRunner = (cmd: string, args: string[], input?: string) => Promise<string>;

export const runCommand: CommandRunner = (cmd, args, input) =>
  new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      { encoding: 'utf8', timeout: 30_000, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${stderr.trim() || err.message}`));
        else resolve(stdout);
      },
    );
    if (input !== undefined) child.stdin?.end(input);
  });

/** A runner that runs every command inside a network namespace (tests, and agents run per namespace). */
export function inNetns(name: string, runner: CommandRunner = runCommand): CommandRunner {
  return (cmd, args, input) => runner('ip', ['netns', 'exec', name, cmd, ...args], input);
}

export type BackendChoice = 'auto' | 'nft' | 'legacy';

export interface IptablesCommands {
  backend: 'nft' | 'legacy';
  save: string;
  restore: string;
}

function commandsFor(family: Family, backend: 'nft' | 'legacy'): IptablesCommands {
  const base = family === 'ipv6' ? 'ip6tables' : 'iptables';
  return { backend, save: `${base}-${backend}-save`, restore: `${base}-${backend}-restore` };
}

/**
 * Which iptables backend the node really uses. Rules written to the other one would be
 * ignored by the kernel path kube-proxy uses, so `auto` does what kube-proxy's
 * iptables-wrapper does: the backend that already holds more rules wins; nft on a tie.
 */
export async function detectBackend(family: Family, choice: BackendChoice, run: CommandRunner): Promise<IptablesCommands> {
  if (choice !== 'auto') return commandsFor(family, choice);
  const count = async (backend: 'nft' | 'legacy'): Promise<number> => {
    try {
      const out = await run(commandsFor(family, backend).save, []);
      return out.split('\n').filter((l) => l.startsWith('-A ')).length;
    } catch {
      return -1; // that backend is not installed or not usable here
    }
  };
  const [nft, legacy] = await Promise.all([count('nft'), count('legacy')]);
  if (nft < 0 && legacy < 0) throw new Error(`neither ${family} iptables backend works (is the iptables package installed?)`);
  return commandsFor(family, legacy > nft ? 'legacy' : 'nft');
}
