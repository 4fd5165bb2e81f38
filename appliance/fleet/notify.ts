// An instance started by a supervisor over an IPC channel (the demo's, as systemd's sd_notify
// would be) reports readiness and its HSM node processes, and stops when the supervisor is gone,
// so a killed supervisor never leaves instances behind.
import type { Appliance } from '../service.js';

export interface NodeSummary {
  id: string;
  pid: number | undefined;
  health: string;
}

export type InstanceMessage =
  | { type: 'ready'; port: number; hsmNodes: NodeSummary[] }
  | { type: 'hsm'; hsmNodes: NodeSummary[] };

const summary = (app: Appliance): NodeSummary[] => app.hsm.status().map((n) => ({ id: n.id, pid: n.pid, health: n.health }));

export function notifySupervisor(app: Appliance, stop: (reason: string) => void): void {
  const send = process.send?.bind(process);
  if (!send || !process.connected) return;
  const post = (m: InstanceMessage) => {
    if (process.connected) send(m);
  };
  post({ type: 'ready', port: app.api.port, hsmNodes: summary(app) });
  app.hsm.onChange(() => post({ type: 'hsm', hsmNodes: summary(app) }));
  process.once('disconnect', () => stop('supervisor gone'));
}
