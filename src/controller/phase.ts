/**
 * The EdgeNode phase, decided from what the cloud and the peers heard. A pure function of its
 * inputs (times in ms on the controller's clock), so every rule is unit-tested over a table.
 */

export const PHASES = ['Ready', 'NotReady', 'Down', 'CutOff', 'Unreachable'] as const;
export type Phase = (typeof PHASES)[number];

export interface PhaseInput {
  now: number;
  /** The Node's Ready condition as kubelet last wrote it (undefined: no Node or no condition). */
  nodeReady?: 'True' | 'False' | 'Unknown';
  nodeReadyReason?: string;
  /** When the cloud last heard the node itself (kubelet renewed its Lease), not our delegated renewals. */
  cloudLastHeard?: number;
  /** When each witnessing peer last heard the node (already converted to the controller's clock). */
  peers: { node: string; lastHeard?: number }[];
  /** The node's own view of the cloud and when it was true (its own report or relayed by a peer). */
  selfView?: { reachable: boolean; known: boolean; since: number; observedAt: number };
  /** The phase currently recorded, to keep `since` across decisions. */
  current?: { phase: Phase; since: number };
}

export interface PhaseSettings {
  cloudGraceMs: number;
  peerGraceMs: number;
}

export interface PhaseDecision {
  phase: Phase;
  since: number;
  reason: string;
  message: string;
  cloudHeard: boolean;
  peersHeard: boolean;
  /** Latest time any peer heard the node. */
  peersLastHeard?: number;
  /** Peers whose sighting is within the grace period. */
  hearingPeers: string[];
}

export function decidePhase(input: PhaseInput, s: PhaseSettings): PhaseDecision {
  const { now } = input;
  const cloudHeard = input.cloudLastHeard !== undefined && now - input.cloudLastHeard <= s.cloudGraceMs;
  let peersLastHeard: number | undefined;
  const hearingPeers: string[] = [];
  for (const p of input.peers) {
    if (p.lastHeard === undefined) continue;
    if (peersLastHeard === undefined || p.lastHeard > peersLastHeard) peersLastHeard = p.lastHeard;
    if (now - p.lastHeard <= s.peerGraceMs) hearingPeers.push(p.node);
  }
  hearingPeers.sort();
  const peersHeard = hearingPeers.length > 0;
  const ago = (t: number | undefined) => (t === undefined ? 'never' : `${Math.round((now - t) / 1000)}s ago`);

  let phase: Phase;
  let reason: string;
  let message: string;
  const view = input.selfView;
  if (cloudHeard) {
    // The node's own word that it reaches no apiserver, newer than the cloud's last proof of the
    // opposite (a kubelet talking to the apiserver directly while the node's cache cannot).
    if (view?.known && !view.reachable && view.observedAt > (input.cloudLastHeard ?? 0)) {
      phase = 'Down';
      reason = 'NodeReachesNoApiserver';
      message = `the node reports it has reached no apiserver since ${new Date(view.since).toISOString()}`;
    } else if (input.nodeReady === 'False') {
      phase = 'NotReady';
      reason = input.nodeReadyReason || 'KubeletNotReady';
      message = 'the node reports itself not ready';
    } else {
      phase = 'Ready';
      reason = 'CloudHearsNode';
      message = `the cloud heard the node ${ago(input.cloudLastHeard)}`;
    }
  } else if (peersHeard) {
    phase = 'CutOff';
    reason = 'OnlyPeersHearNode';
    message = `the cloud last heard the node ${ago(input.cloudLastHeard)}; peers ${hearingPeers.join(', ')} hear it (last ${ago(peersLastHeard)})`;
  } else {
    phase = 'Unreachable';
    reason = input.cloudLastHeard === undefined && peersLastHeard === undefined ? 'NeverHeard' : 'NobodyHearsNode';
    message = `the cloud last heard the node ${ago(input.cloudLastHeard)}, its peers ${ago(peersLastHeard)}`;
  }
  const since = input.current?.phase === phase ? input.current.since : now;
  return {
    phase,
    since,
    reason,
    message,
    cloudHeard,
    peersHeard,
    ...(peersLastHeard !== undefined && { peersLastHeard }),
    hearingPeers,
  };
}

export interface OutOfServiceSettings {
  enabled: boolean;
  afterMs: number;
}

/** Whether an Unreachable node should carry node.kubernetes.io/out-of-service now. */
export function wantsOutOfService(
  decision: Pick<PhaseDecision, 'phase' | 'since'>,
  now: number,
  s: OutOfServiceSettings,
): boolean {
  return s.enabled && decision.phase === 'Unreachable' && now - decision.since >= s.afterMs;
}

/** Whether the controller should speak for the node (renew its Lease and Ready) now. */
export function wantsProtection(decision: Pick<PhaseDecision, 'phase'>, protectCutOff: boolean): boolean {
  return protectCutOff && decision.phase === 'CutOff';
}

/** A metav1.Condition. */
export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

/**
 * Merges desired conditions into the current ones: lastTransitionTime changes only when the
 * status does (reason and message follow the latest decision).
 */
export function mergeConditions(
  current: Condition[] | undefined,
  desired: Omit<Condition, 'lastTransitionTime'>[],
  now: number,
): Condition[] {
  const out: Condition[] = [];
  for (const d of desired) {
    const prev = current?.find((c) => c.type === d.type);
    out.push({
      ...d,
      lastTransitionTime: prev && prev.status === d.status ? prev.lastTransitionTime : new Date(now).toISOString(),
    });
  }
  return out;
}
