// Tell a TLS ClientHello (first byte 0x16, a handshake record) from a PROXY protocol header
// ("PROXY " or the v2 signature "\r\n\r\n...") without consuming anything: the chunk read is put
// back, with the socket paused, so TLS or the PROXY reader sees every byte.
import type { Socket } from 'node:net';

const TLS_HANDSHAKE = 0x16;

export function startsWithTls(socket: Socket, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => finish(new Error('no data before the PROXY protocol timeout')), timeoutMs);
    const onData = (chunk: Buffer) => {
      socket.pause();
      finish(undefined, chunk);
    };
    const onClose = () => finish(new Error('connection closed before any data'));
    function finish(err?: Error, chunk?: Buffer) {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      if (err) return reject(err);
      socket.unshift(chunk!);
      resolve(chunk![0] === TLS_HANDSHAKE);
    }
    socket.on('data', onData);
    socket.once('close', onClose);
  });
}
