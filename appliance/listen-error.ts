// Why a listener could not start, in words that say what to do about it.

export function listenProblem(err: NodeJS.ErrnoException, port: number): string {
  switch (err.code) {
    case 'EADDRINUSE':
      return `port ${port} is already in use: stop what listens there (ss -ltnp 'sport = :${port}' names it) or choose another port`;
    case 'EACCES':
      return `permission denied for port ${port}: ports below 1024 need CAP_NET_BIND_SERVICE (the systemd unit grants it) or another port`;
    case 'EADDRNOTAVAIL':
      return 'the address is not one of this host\'s: use an address the host has, or 0.0.0.0';
    default:
      return err.code ?? err.message;
  }
}
