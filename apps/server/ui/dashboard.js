// The dashboard: plain web components over the server's API (no build step, no framework). The page
// itself holds no data; every call carries the bearer token the user gives (kept in sessionStorage,
// or passed once as #token=... in the URL, which never reaches the server).

const TOKEN_KEY = 'sparsekit-token';
const FINAL = new Set(['succeeded', 'failed', 'cancelled']);

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

class Unauthorized extends Error {}

async function call(path, init = {}) {
  const headers = { authorization: `Bearer ${token()}`, ...(init.headers ?? {}) };
  const r = await fetch(path, { ...init, headers });
  if (r.status === 401) throw new Unauthorized('the token was refused');
  return r;
}

async function api(path, init = {}) {
  const r = await call(path, init);
  const body = await r.json();
  if (!r.ok) throw new Error(body.error?.message ?? `${r.status}`);
  return body;
}

/** A file of the API as an object URL (img and link targets cannot carry the token themselves). */
async function blobUrl(path) {
  const r = await call(path);
  if (!r.ok) return undefined;
  return URL.createObjectURL(await r.blob());
}

/** Server-Sent Events over fetch (EventSource cannot send an Authorization header). */
async function* events(path, signal) {
  const r = await call(path, { signal });
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end = buffer.indexOf('\n\n');
    while (end >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = /^event: (.*)$/m.exec(block)?.[1];
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (event !== undefined && data !== undefined) yield { event, data: JSON.parse(data) };
      end = buffer.indexOf('\n\n');
    }
  }
}

/** An element with attributes and children (strings become text). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat())
    if (c !== undefined && c !== null) el.append(c instanceof Node ? c : String(c));
  return el;
}

const stateBadge = (state) => h('span', { class: `state ${state}`, 'data-state': state }, state);

class SkDashboard extends HTMLElement {
  connectedCallback() {
    const m = /#token=([^&]+)/.exec(location.hash);
    if (m !== null) {
      sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
      history.replaceState(null, '', `${location.pathname}#/jobs`);
    }
    window.addEventListener('hashchange', () => this.route());
    this.route();
  }

  disconnectedCallback() {
    this.stop?.();
  }

  async route() {
    this.stop?.();
    this.stop = undefined;
    this.replaceChildren();
    if (token() === null) return this.login();
    const path = location.hash.replace(/^#/, '') || '/jobs';
    const main = h('main');
    const tab = (href, text) =>
      h('a', { href: `#${href}`, class: path.startsWith(href) ? 'on' : undefined }, text);
    this.append(
      h(
        'header',
        {},
        h('b', {}, 'Sparsekit'),
        tab('/jobs', 'Jobs'),
        tab('/new', 'New job'),
        tab('/models', 'Models'),
      ),
      main,
    );
    try {
      const job = /^\/jobs\/([\w-]+)$/.exec(path);
      if (job !== null) await this.job(main, job[1]);
      else if (path === '/new') await this.submit(main);
      else if (path === '/models') await this.models(main);
      else await this.jobs(main);
    } catch (error) {
      if (error instanceof Unauthorized) {
        sessionStorage.removeItem(TOKEN_KEY);
        return this.login('That token was refused.');
      }
      main.append(h('p', { class: 'error' }, error.message));
    }
  }

  login(message) {
    const input = h('input', { type: 'password', name: 'token', size: 50, placeholder: 'sk_...' });
    const form = h(
      'form',
      {
        onsubmit: (e) => {
          e.preventDefault();
          sessionStorage.setItem(TOKEN_KEY, input.value.trim());
          this.route();
        },
      },
      h('label', {}, 'API token', h('small', {}, 'made by: sparsekit-server token create NAME')),
      input,
      h('button', {}, 'Sign in'),
    );
    this.append(
      h('header', {}, h('b', {}, 'Sparsekit')),
      h('main', {}, message ? h('p', { class: 'error' }, message) : '', form),
    );
  }

  async jobs(main) {
    const body = h('tbody');
    main.append(
      h('h2', {}, 'Jobs'),
      h(
        'table',
        { 'data-testid': 'jobs' },
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            ['job', 'kind', 'state', 'attempts', 'progress'].map((t) => h('th', {}, t)),
          ),
        ),
        body,
      ),
    );
    const refresh = async () => {
      const { jobs } = await api('/jobs?limit=200');
      body.replaceChildren(
        ...jobs
          .reverse()
          .map((j) =>
            h(
              'tr',
              { 'data-job': j.id },
              h('td', {}, h('a', { href: `#/jobs/${j.id}` }, `#${String(j.id).slice(0, 12)}`)),
              h('td', {}, j.kind),
              h('td', {}, stateBadge(j.state)),
              h('td', {}, `${j.attempts}/${j.maxAttempts}`),
              h('td', {}, j.progress?.line ?? (j.error !== null && FINAL.has(j.state) ? j.error : '')),
            ),
          ),
      );
    };
    await refresh();
    const timer = setInterval(() => refresh().catch(() => undefined), 1000);
    this.stop = () => clearInterval(timer);
  }

  async models(main) {
    const { models } = await api('/models');
    const name = h('input', { name: 'name', required: true });
    const path = h('input', { name: 'path', required: true, size: 40 });
    const status = h('p');
    main.append(
      h('h2', {}, 'Models'),
      h(
        'table',
        { 'data-testid': 'models' },
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            ['name', 'source', 'folder'].map((t) => h('th', {}, t)),
          ),
        ),
        h(
          'tbody',
          {},
          models.map((m) => h('tr', {}, h('td', {}, m.name), h('td', {}, m.source), h('td', {}, m.path))),
        ),
      ),
      h('h3', {}, 'Register a folder'),
      h(
        'form',
        {
          onsubmit: async (e) => {
            e.preventDefault();
            try {
              await api('/models', {
                method: 'POST',
                headers: { 'content-type': 'application/json' },
                body: JSON.stringify({ name: name.value, path: path.value }),
              });
              this.route();
            } catch (error) {
              status.textContent = error.message;
              status.className = 'error';
            }
          },
        },
        h('label', {}, 'name'),
        name,
        h('label', {}, 'folder', h('small', {}, 'below the server’s root')),
        path,
        h('button', {}, 'Register'),
      ),
      status,
    );
  }

  async submit(main) {
    const { kinds } = await api('/kinds');
    const { models } = await api('/models');
    const select = h(
      'select',
      { name: 'kind' },
      kinds.map((k) => h('option', { value: k.kind }, k.kind)),
    );
    const fields = h('div', { style: 'display: contents' });
    const status = h('p');
    const draw = () => {
      const kind = kinds.find((k) => k.kind === select.value);
      fields.replaceChildren(
        h('small', { style: 'grid-column: 1 / 3' }, kind.summary),
        ...Object.entries(kind.params.properties).flatMap(([name, s]) => [
          h('label', { for: `p-${name}` }, name, h('small', {}, s.description ?? '')),
          input(name, s, name === 'model' ? models.map((m) => m.name) : undefined),
        ]),
      );
    };
    select.addEventListener('change', draw);
    draw();
    const form = h(
      'form',
      {
        'data-testid': 'submit',
        onsubmit: async (e) => {
          e.preventDefault();
          const kind = kinds.find((k) => k.kind === select.value);
          const params = {};
          for (const [name, s] of Object.entries(kind.params.properties)) {
            const el = form.querySelector(`[name="p-${name}"]`);
            const v = s.type === 'boolean' ? el.checked : el.value.trim();
            if (v === '' || v === false) continue;
            if (s.type === 'array')
              params[name] = v.split(',').map((x) => (s.items?.type === 'number' ? Number(x) : x.trim()));
            else params[name] = s.type === 'number' || s.type === 'integer' ? Number(v) : v;
          }
          try {
            const job = await api('/jobs', {
              method: 'POST',
              headers: { 'content-type': 'application/json' },
              body: JSON.stringify({ kind: kind.kind, params, idempotencyKey: crypto.randomUUID() }),
            });
            location.hash = `#/jobs/${job.id}`;
          } catch (error) {
            status.textContent = error.message;
            status.className = 'error';
          }
        },
      },
      h('label', {}, 'kind'),
      select,
      fields,
      h('button', { type: 'submit' }, 'Submit'),
    );
    main.append(h('h2', {}, 'New job'), form, status);
  }

  async job(main, id) {
    const head = h('h2');
    const log = h('pre', { 'data-testid': 'log' });
    const result = h('div', { 'data-testid': 'result' });
    const cancel = h('button', { onclick: () => api(`/jobs/${id}/cancel`, { method: 'POST' }) }, 'Cancel');
    main.append(head, h('h3', {}, 'Log'), log, result);
    const show = (job) => {
      head.replaceChildren(
        `#${job.id} ${job.kind} `,
        stateBadge(job.state),
        ' ',
        FINAL.has(job.state) ? '' : cancel,
      );
    };
    let job = await api(`/jobs/${id}`);
    show(job);
    log.textContent = await (await call(`/jobs/${id}/log`)).text();
    const abort = new AbortController();
    this.stop = () => abort.abort();
    if (!FINAL.has(job.state)) {
      try {
        for await (const e of events(`/jobs/${id}/events`, abort.signal)) {
          if (e.event === 'log') log.textContent += `${e.data.line}\n`;
          else {
            job = e.data;
            show(job);
          }
        }
      } catch (error) {
        if (abort.signal.aborted) return;
        throw error;
      }
      log.textContent = await (await call(`/jobs/${id}/log`)).text();
    }
    await this.result(result, job);
  }

  async result(el, job) {
    if (job.state === 'failed') el.append(h('p', { class: 'error' }, job.error));
    if (job.state !== 'succeeded') return;
    const svg = await blobUrl(`/jobs/${job.id}/files/report/report.svg`);
    if (svg !== undefined) {
      const html = await blobUrl(`/jobs/${job.id}/files/report/report.html`);
      el.append(
        h('h3', {}, 'Report'),
        h('div', { class: 'report' }, h('img', { src: svg, alt: 'report charts', 'data-testid': 'report' })),
        html === undefined
          ? ''
          : h('p', {}, h('a', { href: html, target: '_blank' }, 'Open the full report')),
      );
    }
    if (job.kind === 'sae-features') this.features(el, job.result);
    if (['prune', 'convert', 'sae-train'].includes(job.kind)) {
      const link = h('a', { href: '#', 'data-testid': 'download' }, 'Download the folder (tar)');
      link.addEventListener('click', async (e) => {
        e.preventDefault();
        const url = await blobUrl(`/jobs/${job.id}/output.tar`);
        const a = h('a', { href: url, download: `job-${job.id}.tar` });
        a.click();
      });
      el.append(h('p', {}, link));
    }
    el.append(h('h3', {}, 'Result'), h('pre', {}, JSON.stringify(job.result, null, 2)));
  }

  /** The SAE feature browser: features by activation; each one's contexts and logit effects. */
  features(el, result) {
    const list = h('ul', { 'data-testid': 'features' });
    const detail = h('div');
    const pick = (f, li) => {
      for (const x of list.children) x.classList.toggle('on', x === li);
      detail.replaceChildren(
        h(
          'h4',
          {},
          `Feature ${f.feature}: density ${(100 * f.density).toFixed(2)}%, max ${f.maxActivation.toFixed(3)}`,
        ),
        ...f.topContexts.map((c) =>
          h(
            'div',
            { class: 'context' },
            c.text.map((t, i) => (i === c.at ? h('mark', { title: c.activations[i].toFixed(3) }, t) : t)),
            `  (${c.activation.toFixed(3)})`,
          ),
        ),
        f.logitEffects === undefined
          ? ''
          : h(
              'p',
              {},
              'promotes: ',
              f.logitEffects.positive
                .slice(0, 8)
                .map((e) => JSON.stringify(e.text))
                .join(' '),
              h('br'),
              'suppresses: ',
              f.logitEffects.negative
                .slice(0, 8)
                .map((e) => JSON.stringify(e.text))
                .join(' '),
            ),
      );
    };
    for (const f of result.features) {
      const li = h(
        'li',
        { 'data-feature': f.feature },
        `#${f.feature}  max ${f.maxActivation.toFixed(2)}  ${(100 * f.density).toFixed(1)}%`,
      );
      li.addEventListener('click', () => pick(f, li));
      list.append(li);
    }
    el.append(
      h('h3', {}, `Features of the ${result.architecture} SAE at ${result.site}`),
      h('div', { class: 'features' }, list, detail),
    );
    if (list.firstChild !== null) pick(result.features[0], list.firstChild);
  }
}

/** A form control for one params field of a kind's schema. */
function input(name, s, choices) {
  const attrs = { name: `p-${name}`, id: `p-${name}` };
  if (choices !== undefined || s.enum !== undefined)
    return h(
      'select',
      attrs,
      h('option', { value: '' }, '(default)'),
      (choices ?? s.enum).map((v) => h('option', { value: v }, v)),
    );
  if (s.type === 'boolean') return h('input', { ...attrs, type: 'checkbox' });
  if (s.type === 'number' || s.type === 'integer')
    return h('input', {
      ...attrs,
      type: 'number',
      step: s.type === 'integer' ? 1 : 'any',
      min: s.minimum,
      max: s.maximum,
    });
  return h('input', { ...attrs, placeholder: s.type === 'array' ? 'comma-separated' : '' });
}

customElements.define('sk-dashboard', SkDashboard);
