import t from 'tap';
import { decidePhase, mergeConditions, type PhaseInput, wantsOutOfService, wantsProtection } from '../../src/controller/phase.ts';

const now = 1_000_000;
const s = { cloudGraceMs: 20_000, peerGraceMs: 15_000 };

const cases: { name: string; input: Omit<PhaseInput, 'now'>; phase: string; reason?: string }[] = [
  { name: 'fresh lease, Ready', input: { cloudLastHeard: now - 5_000, nodeReady: 'True', peers: [] }, phase: 'Ready' },
  { name: 'fresh lease, no Ready condition yet', input: { cloudLastHeard: now - 5_000, peers: [] }, phase: 'Ready' },
  {
    name: 'fresh lease, kubelet says NotReady',
    input: { cloudLastHeard: now - 1_000, nodeReady: 'False', nodeReadyReason: 'KubeletNotReady', peers: [] },
    phase: 'NotReady',
    reason: 'KubeletNotReady',
  },
  {
    name: 'lease exactly at the grace edge is still heard',
    input: { cloudLastHeard: now - 20_000, peers: [] },
    phase: 'Ready',
  },
  {
    name: 'stale lease, one peer heard it recently',
    input: { cloudLastHeard: now - 21_000, peers: [{ node: 'b', lastHeard: now - 2_000 }] },
    phase: 'CutOff',
  },
  {
    name: 'stale lease, NLC already set Unknown, peers hear it',
    input: { cloudLastHeard: now - 60_000, nodeReady: 'Unknown', peers: [{ node: 'b', lastHeard: now - 1_000 }, { node: 'c' }] },
    phase: 'CutOff',
  },
  {
    name: 'stale lease, peers heard it too long ago',
    input: { cloudLastHeard: now - 60_000, peers: [{ node: 'b', lastHeard: now - 16_000 }] },
    phase: 'Unreachable',
    reason: 'NobodyHearsNode',
  },
  { name: 'never heard by anyone', input: { peers: [{ node: 'b' }] }, phase: 'Unreachable', reason: 'NeverHeard' },
  {
    name: 'cloud hears the node, but the node says it reaches no apiserver (newer than the lease)',
    input: {
      cloudLastHeard: now - 5_000,
      peers: [],
      selfView: { reachable: false, known: true, since: now - 30_000, observedAt: now - 1_000 },
    },
    phase: 'Down',
  },
  {
    name: "the node's stale Down view (older than the cloud's last proof) is ignored",
    input: {
      cloudLastHeard: now - 1_000,
      peers: [],
      selfView: { reachable: false, known: true, since: now - 30_000, observedAt: now - 5_000 },
    },
    phase: 'Ready',
  },
  {
    name: 'unknown self view is ignored',
    input: { cloudLastHeard: now - 1_000, peers: [], selfView: { reachable: false, known: false, since: 0, observedAt: now } },
    phase: 'Ready',
  },
  {
    name: 'cut off and the node says it reaches no apiserver: CutOff (the cloud view wins)',
    input: {
      cloudLastHeard: now - 30_000,
      peers: [{ node: 'b', lastHeard: now - 500 }],
      selfView: { reachable: false, known: true, since: now - 29_000, observedAt: now - 500 },
    },
    phase: 'CutOff',
  },
];

t.test('decidePhase over a table of inputs', async (t) => {
  for (const c of cases) {
    const d = decidePhase({ now, ...c.input }, s);
    t.equal(d.phase, c.phase, c.name);
    if (c.reason) t.equal(d.reason, c.reason, `${c.name}: reason`);
  }
});

t.test('since is kept while the phase holds and reset on change', async (t) => {
  const input = { now, cloudLastHeard: now - 1_000, peers: [] };
  t.equal(decidePhase({ ...input, current: { phase: 'Ready', since: 5 } }, s).since, 5);
  t.equal(decidePhase({ ...input, current: { phase: 'CutOff', since: 5 } }, s).since, now);
  t.equal(decidePhase(input, s).since, now);
});

t.test('hearing peers and last heard', async (t) => {
  const d = decidePhase(
    {
      now,
      peers: [
        { node: 'c', lastHeard: now - 1_000 },
        { node: 'b', lastHeard: now - 3_000 },
        { node: 'd', lastHeard: now - 99_000 },
      ],
    },
    s,
  );
  t.same(d.hearingPeers, ['b', 'c']);
  t.equal(d.peersLastHeard, now - 1_000);
});

t.test('out-of-service only when enabled and Unreachable for afterMs', async (t) => {
  const opts = { enabled: true, afterMs: 10_000 };
  t.equal(wantsOutOfService({ phase: 'Unreachable', since: now - 10_000 }, now, opts), true);
  t.equal(wantsOutOfService({ phase: 'Unreachable', since: now - 9_999 }, now, opts), false);
  t.equal(wantsOutOfService({ phase: 'CutOff', since: now - 99_000 }, now, opts), false);
  t.equal(wantsOutOfService({ phase: 'Unreachable', since: 0 }, now, { ...opts, enabled: false }), false);
  t.equal(wantsProtection({ phase: 'CutOff' }, true), true);
  t.equal(wantsProtection({ phase: 'CutOff' }, false), false);
  t.equal(wantsProtection({ phase: 'Unreachable' }, true), false);
});

t.test('conditions keep their transition time while the status holds', async (t) => {
  const first = mergeConditions(undefined, [{ type: 'CloudHeard', status: 'True', reason: 'A', message: '' }], 1_000);
  const same = mergeConditions(first, [{ type: 'CloudHeard', status: 'True', reason: 'B', message: 'x' }], 9_000);
  t.equal(same[0]?.lastTransitionTime, new Date(1_000).toISOString());
  t.equal(same[0]?.reason, 'B');
  const flipped = mergeConditions(same, [{ type: 'CloudHeard', status: 'False', reason: 'C', message: '' }], 9_000);
  t.equal(flipped[0]?.lastTransitionTime, new Date(9_000).toISOString());
});
