import type { Logger } from '../log.ts';

/**
 * First SIGTERM/SIGINT: run `stop` (graceful drain and host cleanup), then exit 0.
 * Second signal: exit at once with 128+signal, because an operator pressing Ctrl-C twice
 * means it. Returns a function that removes the handlers.
 */
export function onShutdownSignals(stop: () => Promise<void>, logger: Logger): () => void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals): void => {
    const code = 128 + (signal === 'SIGINT' ? 2 : 15);
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(code);
    }
    stopping = true;
    logger.info({ signal }, 'signal received: shutting down (send it again to exit at once)');
    stop().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err: String(err) }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
  return () => {
    process.off('SIGTERM', handler);
    process.off('SIGINT', handler);
  };
}
