// Shared state as token objects: CKO_DATA objects under one CKA_APPLICATION, named by CKA_LABEL,
// private (only a logged-in user sees them) and on the token (they survive restarts, and an HSM
// cluster replicates them like keys). The kill switch's blocks live here, so every proxy instance
// in front of the same HSMs sees them.
import pkcs11js from 'pkcs11js';
import { call, Pkcs11Module, type Handle } from './pkcs11.js';
import type { StateObject } from '../types.js';

export class Pkcs11StateModule extends Pkcs11Module {
  private find(session: Handle, application: string, label?: string): Handle[] {
    const template = [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_DATA },
      { type: pkcs11js.CKA_TOKEN, value: true },
      { type: pkcs11js.CKA_APPLICATION, value: application },
      ...(label === undefined ? [] : [{ type: pkcs11js.CKA_LABEL, value: label }]),
    ];
    call('C_FindObjectsInit', 'other', () => this.lib.C_FindObjectsInit(session, template));
    const found: Handle[] = [];
    try {
      for (;;) {
        const batch = call('C_FindObjects', 'other', () => this.lib.C_FindObjects(session, 64));
        found.push(...batch);
        if (batch.length < 64) break;
      }
    } finally {
      call('C_FindObjectsFinal', 'other', () => this.lib.C_FindObjectsFinal(session));
    }
    return found;
  }

  listState(session: Handle, application: string): StateObject[] {
    return this.find(session, application).map((h) => {
      const [label, value] = call('C_GetAttributeValue', 'other', () =>
        this.lib.C_GetAttributeValue(session, h, [{ type: pkcs11js.CKA_LABEL }, { type: pkcs11js.CKA_VALUE }]),
      );
      return { label: Buffer.from((label?.value as Buffer | undefined) ?? []).toString('utf8'), value: Buffer.from((value?.value as Buffer | undefined) ?? []) };
    });
  }

  /** Replace the object with this label (needs a read-write session). */
  putState(session: Handle, application: string, label: string, value: Buffer): void {
    const old = this.find(session, application, label);
    call('C_CreateObject', 'other', () =>
      this.lib.C_CreateObject(session, [
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_DATA },
        { type: pkcs11js.CKA_TOKEN, value: true },
        { type: pkcs11js.CKA_PRIVATE, value: true },
        { type: pkcs11js.CKA_APPLICATION, value: application },
        { type: pkcs11js.CKA_LABEL, value: label },
        { type: pkcs11js.CKA_VALUE, value },
      ]),
    );
    // Created first, then the old ones go: a reader never sees the label missing.
    for (const h of old) call('C_DestroyObject', 'other', () => this.lib.C_DestroyObject(session, h));
  }

  /** Remove every object with this label; returns how many there were. */
  deleteState(session: Handle, application: string, label: string): number {
    const found = this.find(session, application, label);
    for (const h of found) call('C_DestroyObject', 'other', () => this.lib.C_DestroyObject(session, h));
    return found.length;
  }
}
