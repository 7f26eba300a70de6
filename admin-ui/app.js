'use strict';
// Shows whether the gateway reports itself ready.
(async () => {
  const el = document.getElementById('status');
  try {
    const r = await fetch('/readyz', { cache: 'no-store' });
    const body = await r.json();
    el.textContent = r.ok ? 'Service ready.' : `Service not ready (${body.status}).`;
    el.className = r.ok ? 'ok' : 'bad';
  } catch (e) {
    el.textContent = 'Service unreachable.';
    el.className = 'bad';
  }
})();
