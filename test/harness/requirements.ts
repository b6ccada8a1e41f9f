import { execFileSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/**
 * Real-part tests need real things: root, `ip netns`, `dig`, Kubernetes binaries. On a user's
 * machine without them a test file skips with one line saying what is missing; in CI
 * (CI=true) the same absence is a failure, so nothing is silently skipped there.
 */
export interface Requirements {
  root?: boolean;
  /** Commands that must be on PATH, e.g. ['dig', 'ip']. */
  commands?: string[];
  /** Absolute paths of files that must exist and be executable (built binaries). */
  executables?: string[];
}

/** The list of what is missing; empty when everything is there. */
export function missingRequirements(req: Requirements): string[] {
  const missing: string[] = [];
  if (req.root && process.getuid?.() !== 0) missing.push('root');
  for (const cmd of req.commands ?? []) if (!onPath(cmd)) missing.push(`command ${cmd}`);
  for (const file of req.executables ?? []) {
    try {
      accessSync(file, constants.X_OK);
    } catch {
      missing.push(`executable ${file}`);
    }
  }
  return missing;
}

export interface TapLike {
  plan(n: number, comment?: string): void;
  fail(message: string): void;
  end(): void;
}

/**
 * Returns true when the test can go on. Otherwise: in CI, fails the test naming what is
 * missing; elsewhere, plans zero tests with a one-line skip reason. Call it first in a file.
 */
export function requireOrSkip(t: TapLike, req: Requirements): boolean {
  const missing = missingRequirements(req);
  if (missing.length === 0) return true;
  const what = `missing: ${missing.join(', ')}`;
  if (process.env.CI === 'true') {
    t.fail(`this test needs ${what} (CI=true, so this is a failure, not a skip)`);
    t.end();
  } else {
    t.plan(0, `skipped, ${what}`);
  }
  return false;
}

function onPath(cmd: string): boolean {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    try {
      accessSync(join(dir, cmd), constants.X_OK);
      return true;
    } catch {}
  }
  // Some tools live in sbin directories that a non-login PATH lacks.
  for (const dir of ['/usr/sbin', '/sbin']) {
    try {
      accessSync(join(dir, cmd), constants.X_OK);
      return true;
    } catch {}
  }
  return false;
}

/** Runs a command and returns its stdout; throws with stderr on failure. */
export function run(cmd: string, args: string[], input?: string): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], ...(input !== undefined && { input }) });
}
