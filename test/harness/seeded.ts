/**
 * xorshift32: the seeded generator of the fuzz tests, so a failing run replays with its seed
 * (each test reads it from an environment variable and prints it with a failure).
 */
export function seededRandom(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x100000000;
  };
}
