// Tollgate's billing page.
//
// Everything here goes through the public GraphQL API at ./graphql, exactly
// as a customer's own dashboard would: read this file as an example. Each
// section loads with its own small query, so one failure leaves the rest of
// the page working, and a network error offers a Retry instead of a blank.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);

  // ---------------------------------------------------------------- session

  // The token from #token=… lives in this object only: never in storage,
  // never in the address bar once read. Without one, the browser's
  // tollgate_session cookie (if any) authenticates the requests.
  const session = { token: null, canWrite: false };

  function takeFragmentToken() {
    if (!location.hash) return null;
    const token = new URLSearchParams(location.hash.slice(1)).get('token');
    // Clear the fragment at once so that it is neither bookmarked, shared
    // nor left in the history.
    history.replaceState(history.state, '', location.pathname + location.search);
    return token;
  }

  // The scopes a JWT carries, read from its payload. The server checks the
  // signature; the page only uses this to decide which controls to show.
  function scopesOf(token) {
    try {
      const payload = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      const claims = JSON.parse(atob(payload));
      return typeof claims.scope === 'string' ? claims.scope.split(' ') : []; // as the server: spaces only
    } catch {
      return null;
    }
  }

  // ---------------------------------------------------------------- GraphQL

  class SessionExpired extends Error {}
  // Retryable: the request did not get an answer, or the server asked for a
  // retry (UNAVAILABLE, RATE_LIMITED).
  class NetworkError extends Error {}
  class APIError extends Error {
    constructor(message, code) { super(message); this.code = code; }
  }

  async function gql(query, variables) {
    const headers = { 'Content-Type': 'application/json' };
    if (session.token) headers.Authorization = 'Bearer ' + session.token;
    let res;
    try {
      res = await fetch('graphql', {
        method: 'POST', headers, credentials: 'same-origin', cache: 'no-store',
        body: JSON.stringify({ query, variables }),
      });
    } catch {
      throw new NetworkError('Could not reach Tollgate.');
    }
    let body;
    try {
      body = await res.json();
    } catch {
      throw new NetworkError(`Tollgate answered ${res.status} without a GraphQL response.`);
    }
    const err = body.errors && body.errors[0];
    if (err) {
      const ext = err.extensions || {};
      if (ext.code === 'UNAUTHENTICATED') throw new SessionExpired(ext.reason || '');
      if (ext.code === 'UNAVAILABLE' || ext.code === 'RATE_LIMITED' || ext.retryable) {
        throw new NetworkError(err.message);
      }
      throw new APIError(err.message, ext.code);
    }
    if (!body.data) throw new NetworkError(`Tollgate answered ${res.status} without data.`);
    return body.data;
  }

  // ------------------------------------------------------- banner and tasks

  // Failed loads and actions wait here until Retry runs them again.
  const failed = new Map();

  async function run(name, fn) {
    try {
      await fn();
      failed.delete(name);
      if (failed.size === 0) $('banner').hidden = true;
    } catch (e) {
      if (e instanceof SessionExpired) return showExpired(e.message);
      failed.set(name, fn);
      $('banner-text').textContent = e instanceof NetworkError
        ? e.message + ' Some information may be missing.'
        : 'Something went wrong: ' + e.message;
      $('banner').hidden = false;
    }
  }

  $('banner-retry').addEventListener('click', () => {
    const tasks = [...failed.entries()];
    $('banner').hidden = true;
    tasks.forEach(([name, fn]) => run(name, fn));
  });

  function showExpired(reason) {
    session.token = null;
    $('content').hidden = true;
    $('state-loading').hidden = true;
    $('banner').hidden = true;
    failed.clear();
    const returning = new URLSearchParams(location.search).get('checkout');
    let text = 'Your sign-in is missing or has expired. Open this page again from your dashboard.';
    if (reason === 'TOKEN_EXPIRED') text = 'Your session has expired. Open this page again from your dashboard.';
    if (returning === 'success') text = 'Checkout is complete. Open this page again from your dashboard to see your new plan.';
    $('expired-text').textContent = text;
    $('state-expired').hidden = false;
  }

  // A control's userErrors (or a mutation's error) go next to the control.
  function showError(id, message) {
    const el = $(id);
    el.textContent = message || '';
    el.hidden = !message;
  }

  // -------------------------------------------------------------- formatting

  const dateFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeZone: 'UTC' });
  const monthFmt = new Intl.DateTimeFormat(undefined, { year: 'numeric', month: 'long', timeZone: 'UTC' });
  const shortDayFmt = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', timeZone: 'UTC' });
  const numberFmt = new Intl.NumberFormat();
  const compactFmt = new Intl.NumberFormat(undefined, { notation: 'compact', maximumFractionDigits: 1 });

  const formatDate = (iso) => (iso ? dateFmt.format(new Date(iso)) : '—');

  // Money is in Stripe's minor units, so Stripe's exponents say how many
  // digits that is, not Intl's (which has 0 for isk where Stripe has 2).
  // internal/money holds the same lists; TestBillingJSKnowsStripesExponents
  // keeps them in step.
  const ZERO_DECIMAL = ['bif', 'clp', 'djf', 'gnf', 'jpy', 'kmf', 'krw', 'mga', 'pyg', 'rwf', 'ugx', 'vnd', 'vuv', 'xaf', 'xof', 'xpf'];
  const THREE_DECIMAL = ['bhd', 'jod', 'kwd', 'omr', 'tnd'];
  const exponent = (code) => (ZERO_DECIMAL.includes(code) ? 0 : THREE_DECIMAL.includes(code) ? 3 : 2);
  function formatMoney(minor, currency) {
    const code = String(currency);
    const exp = exponent(code.toLowerCase());
    const value = minor / 10 ** exp;
    try {
      return new Intl.NumberFormat(undefined, { style: 'currency', currency: code.toUpperCase() }).format(value);
    } catch (e) {
      // A code Intl refuses (RangeError) spoils only its own amount: the
      // number and the code as they came.
      if (!(e instanceof RangeError)) throw e;
      return `${value.toFixed(exp)} ${code.toUpperCase()}`;
    }
  }

  const isBytes = (meter) => /_bytes$/.test(meter);
  function formatBytes(n) {
    const units = ['B', 'KB', 'MB', 'GB', 'TB', 'PB'];
    let i = 0;
    let v = Math.abs(n);
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return (n < 0 ? '-' : '') + new Intl.NumberFormat(undefined, { maximumFractionDigits: i ? 1 : 0 }).format(v) + ' ' + units[i];
  }
  const formatAmount = (meter, n) => (isBytes(meter) ? formatBytes(n) : numberFmt.format(n));
  const meterLabel = (meter) => meter.replace(/_/g, ' ');
  const words = (s) => s.charAt(0) + s.slice(1).toLowerCase().replace(/_/g, ' ');

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }

  // ------------------------------------------------------------ confirmation

  function confirmAction(title, text, ok) {
    const dlg = $('confirm');
    $('confirm-title').textContent = title;
    $('confirm-text').textContent = text;
    $('confirm-yes').textContent = ok;
    return new Promise((resolve) => {
      const done = (answer) => {
        $('confirm-yes').removeEventListener('click', yes);
        $('confirm-no').removeEventListener('click', no);
        dlg.removeEventListener('cancel', no);
        if (dlg.open) dlg.close();
        resolve(answer);
      };
      const yes = () => done(true);
      const no = () => done(false);
      $('confirm-yes').addEventListener('click', yes);
      $('confirm-no').addEventListener('click', no);
      // Escape. Not 'close': that event is queued, and the one from the
      // previous answer could arrive after this dialog opened.
      dlg.addEventListener('cancel', no);
      dlg.showModal();
      // The safe answer has the focus.
      $('confirm-no').focus();
    });
  }

  // ------------------------------------------------------------ plan section

  const PLAN_FIELDS = `id name priceCents currency interval contactSales stripePriceId rateLimitPerSecond
    prices { id interval amountCents currency }`;
  const SUBSCRIPTION_FIELDS = `status currentPeriodStart currentPeriodEnd cancelAtPeriodEnd canceledAt hasBillingHistory
    planMismatch plan { ${PLAN_FIELDS} } price { interval amountCents currency }`;

  let plans = [];

  async function loadAccount() {
    const data = await gql(`query BillingAccount {
      organization { name }
      subscription { ${SUBSCRIPTION_FIELDS} }
      plans { ${PLAN_FIELDS} }
    }`);
    $('org-name').textContent = data.organization.name;
    plans = data.plans;
    renderSubscription(data.subscription);
  }

  // Stripe subscription statuses in which the plan is in force.
  const inForce = (status) => ['ACTIVE', 'TRIALING', 'PAST_DUE'].includes(status);

  function renderSubscription(sub) {
    const plan = sub.plan;
    $('plan-name').textContent = plan.name;
    $('plan-name').dataset.plan = plan.id;
    // What the subscription pays (a yearly price, another currency), else
    // the plan's monthly headline.
    const price = sub.price || { amountCents: plan.priceCents, currency: plan.currency, interval: plan.interval };
    $('plan-price').textContent = plan.contactSales && !sub.price ? 'Priced by contract' : formatMoney(price.amountCents, price.currency);
    $('plan-interval').textContent = plan.contactSales && !sub.price ? '' : 'per ' + price.interval.toLowerCase();
    // A second, as the plans table, plans { rateLimitPerSecond } and the
    // README state it.
    $('plan-ratelimit').textContent = `Rate limit: ${numberFmt.format(plan.rateLimitPerSecond)} usage checks a second`;

    $('plan-mismatch').hidden = !sub.planMismatch;

    const badge = $('plan-status');
    let label = sub.status ? words(sub.status) : 'Free';
    let tone = { ACTIVE: 'ok', TRIALING: 'ok', PAST_DUE: 'warn' }[sub.status] || (sub.status ? 'bad' : 'neutral');
    if (sub.cancelAtPeriodEnd && inForce(sub.status)) {
      label = 'Cancels on ' + formatDate(sub.currentPeriodEnd);
      tone = 'warn';
    }
    badge.textContent = label;
    badge.className = 'badge ' + tone;
    badge.dataset.status = sub.status || '';
    $('plan-period').textContent = sub.currentPeriodEnd && inForce(sub.status)
      ? `Current period: ${formatDate(sub.currentPeriodStart)} – ${formatDate(sub.currentPeriodEnd)}`
      : '';

    // Controls that change billing need billing:write.
    $('plan-actions').hidden = !session.canWrite;
    $('manage-billing').hidden = !sub.hasBillingHistory;
    $('manage-billing-note').hidden = sub.hasBillingHistory;
    $('cancel-sub').hidden = !(inForce(sub.status) && !sub.cancelAtPeriodEnd);
    $('resume-sub').hidden = !(inForce(sub.status) && sub.cancelAtPeriodEnd);
    $('cancel-sub').dataset.until = formatDate(sub.currentPeriodEnd);

    // Checkout sells a first subscription; a paid plan changes in the
    // portal, which prorates.
    const list = $('upgrade-list');
    list.replaceChildren();
    const purchasable = plans.filter((p) => p.stripePriceId && !p.contactSales && p.id !== plan.id);
    const subscribed = inForce(sub.status);
    $('upgrades').hidden = !session.canWrite || purchasable.length === 0;
    $('upgrades-note').hidden = !subscribed;
    if (subscribed) return;
    for (const p of purchasable) {
      const errId = 'upgrade-error-' + p.id;
      // One button per interval the plan is sold at in its headline
      // currency: monthly first (the headline price), then yearly.
      const prices = p.prices.filter((pr) => pr.currency === p.currency);
      if (!prices.length) prices.push({ interval: p.interval, amountCents: p.priceCents, currency: p.currency });
      prices.sort((a, b) => (a.interval === 'MONTH' ? -1 : 0) - (b.interval === 'MONTH' ? -1 : 0));
      const buttons = prices.map((pr) => {
        const per = pr.interval.toLowerCase();
        const button = el('button', {
          type: 'button', class: 'upgrade' + (pr.interval === 'MONTH' ? '' : ' secondary'),
          'data-plan': p.id, 'data-interval': pr.interval, 'aria-describedby': errId,
          text: `${pr.interval === 'MONTH' ? 'Upgrade' : 'Yearly'}: ${formatMoney(pr.amountCents, pr.currency)} a ${per}`,
          'aria-label': `Upgrade to ${p.name}, ${formatMoney(pr.amountCents, pr.currency)} a ${per}`,
        });
        button.addEventListener('click', () => run('upgrade', () => upgrade(p, pr.interval, button, errId)));
        return button;
      });
      list.append(el('li', {},
        el('span', { class: 'upgrade-plan' },
          el('strong', { text: p.name }), ' ',
          el('span', { class: 'muted', text: `${numberFmt.format(p.rateLimitPerSecond)} usage checks a second` })),
        el('span', { class: 'actions' }, ...buttons),
        el('p', { class: 'field-error', id: errId, role: 'alert', hidden: true })));
    }
  }

  // Where Stripe sends the customer back to: this page, without the token.
  const here = (extra) => location.origin + location.pathname + (extra || '');

  // Stripe's Checkout and Portal refuse to be framed: from inside a frame,
  // go there in the top window.
  function leaveFor(url) {
    if (window.top !== window) window.open(url, '_top');
    else location.assign(url);
  }

  async function withBusy(button, fn) {
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
    try {
      await fn();
    } finally {
      button.disabled = false;
      button.removeAttribute('aria-busy');
    }
  }

  function upgrade(plan, interval, button, errId) {
    showError(errId, '');
    return withBusy(button, async () => {
      const data = await gql(`mutation StartCheckout($input: CreateCheckoutSessionInput!) {
        createCheckoutSession(input: $input) { url userErrors { field message code } }
      }`, { input: { plan: plan.id, interval, successUrl: here('?checkout=success'), cancelUrl: here('?checkout=canceled') } });
      const r = data.createCheckoutSession;
      if (r.userErrors.length) return showError(errId, r.userErrors.map((e) => e.message).join(' '));
      leaveFor(r.url);
    });
  }

  $('manage-billing').addEventListener('click', () => run('portal', () => {
    showError('manage-billing-error', '');
    return withBusy($('manage-billing'), async () => {
      const data = await gql(`mutation OpenPortal($input: CreatePortalSessionInput!) {
        createPortalSession(input: $input) { url userErrors { field message code } }
      }`, { input: { returnUrl: here() } });
      const r = data.createPortalSession;
      if (r.userErrors.length) return showError('manage-billing-error', r.userErrors.map((e) => e.message).join(' '));
      leaveFor(r.url);
    });
  }));

  async function changeSubscription(button, mutation) {
    showError('sub-error', '');
    await withBusy(button, async () => {
      let data;
      try {
        data = await gql(mutation);
      } catch (e) {
        if (e instanceof APIError) return showError('sub-error', e.message);
        throw e;
      }
      const r = Object.values(data)[0];
      if (r.userErrors.length) return showError('sub-error', r.userErrors.map((e) => e.message).join(' '));
      renderSubscription(r.subscription);
    });
  }

  $('cancel-sub').addEventListener('click', async () => {
    const until = $('cancel-sub').dataset.until;
    if (!await confirmAction('Cancel at period end?', `Your plan stays in force until ${until}, then ends. You can resume it before then.`, 'Cancel at period end')) return;
    run('cancel', () => changeSubscription($('cancel-sub'),
      `mutation Cancel { cancelSubscription(input: {atPeriodEnd: true}) { subscription { ${SUBSCRIPTION_FIELDS} } userErrors { field message code } } }`));
  });

  $('resume-sub').addEventListener('click', async () => {
    if (!await confirmAction('Resume the subscription?', 'The cancellation is withdrawn and the plan renews as before.', 'Resume')) return;
    run('resume', () => changeSubscription($('resume-sub'),
      `mutation Resume { resumeSubscription { subscription { ${SUBSCRIPTION_FIELDS} } userErrors { field message code } } }`));
  });

  // ----------------------------------------------------------- usage section

  let usage = null; // the selected period's answer

  async function loadUsage(period) {
    const data = await gql(`query Usage($period: String) {
      usage(period: $period) {
        periodStart periodEnd
        meters { meter used limit unlimited overage hard reset }
      }
    }`, { period: period || null });
    usage = data.usage;
    if (!period) fillPeriods(usage.periodStart);
    renderUsage();
    fillChartMeters();
    await Promise.all([
      run('chart', loadChart),
      run('endpoints', loadEndpoints),
    ]);
  }

  const periodOf = (iso) => iso.slice(0, 7); // "2026-03-01T00:00:00Z" -> "2026-03"

  // The selector offers the current month (the server's, not the browser's)
  // and the eleven before it.
  function fillPeriods(currentStart) {
    const select = $('period');
    select.replaceChildren();
    const d = new Date(currentStart);
    for (let i = 0; i < 12; i++) {
      const m = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() - i, 1));
      const value = m.toISOString().slice(0, 7);
      select.append(el('option', { value, text: monthFmt.format(m) + (i === 0 ? ' (current)' : '') }));
    }
  }

  $('period').addEventListener('change', () => run('usage', () => loadUsage($('period').value)));

  function renderUsage() {
    const end = new Date(usage.periodEnd);
    const current = $('period').selectedIndex <= 0;
    $('usage-range').textContent = `${formatDate(usage.periodStart)} – ${formatDate(new Date(end - 1).toISOString())}`;
    const list = $('meters');
    list.replaceChildren();
    for (const m of usage.meters) {
      const name = meterLabel(m.meter);
      const used = el('span', { class: 'used', 'data-value': String(m.used), text: formatAmount(m.meter, m.used) });
      const figures = el('span', { class: 'figures' }, used, ' of ',
        m.unlimited
          ? el('span', { class: 'limit', 'data-value': 'unlimited', text: 'unlimited' })
          : el('span', { class: 'limit', 'data-value': String(m.limit), text: formatAmount(m.meter, m.limit) }));
      const item = el('li', { class: 'meter', 'data-meter': m.meter },
        el('div', { class: 'meter-head' }, el('span', { class: 'meter-name', text: name }), figures));
      if (!m.unlimited) {
        // Past a soft limit the bar splits: the included part, then the
        // overage, so the share billed extra is visible at a glance. Past a
        // hard limit (usage from a looser plan before a downgrade) nothing
        // is billed extra: the bar is simply full.
        const total = m.overage > 0 ? Math.max(m.used, m.limit, 1) : Math.max(m.limit, 1);
        const bar = el('div', {
          class: 'bar' + (m.overage > 0 ? ' over' : '') + (m.hard && m.used >= m.limit ? ' full' : ''),
          role: 'progressbar', 'aria-label': name, 'aria-valuemin': '0', 'aria-valuemax': String(m.limit),
          'aria-valuenow': String(Math.min(m.used, m.limit)),
          'aria-valuetext': `${formatAmount(m.meter, m.used)} of ${formatAmount(m.meter, m.limit)}`,
        });
        const fill = el('div', { class: 'fill' });
        fill.style.width = (m.hard && m.used >= m.limit ? 100 : (100 * Math.min(m.used, m.limit)) / total) + '%';
        bar.append(fill);
        if (m.overage > 0) {
          const over = el('div', { class: 'overage' });
          over.style.width = (100 * m.overage) / total + '%';
          bar.append(over);
        }
        item.append(bar);
      }
      const notes = [];
      if (m.overage > 0) notes.push(el('strong', { class: 'over-text', text: `${formatAmount(m.meter, m.overage)} over the soft limit, billed as overage.` }));
      else if (m.hard && !m.unlimited && m.used >= m.limit) notes.push(el('strong', { class: 'over-text', text: 'Limit reached: further usage is refused until the reset.' }));
      if (m.reset === 'MONTHLY') notes.push((current ? 'Resets on ' : 'Reset on ') + formatDate(usage.periodEnd) + '.');
      else notes.push('A running total; it never resets.');
      if (!m.unlimited) notes.push(m.hard ? 'Hard limit.' : 'Soft limit.');
      const p = el('p', { class: 'muted meter-note' });
      notes.forEach((n, i) => p.append(i ? ' ' : '', n));
      item.append(p);
      list.append(item);
    }
  }

  // ----------------------------------------------------------- daily chart

  function fillChartMeters() {
    const select = $('chart-meter');
    const keep = select.value;
    select.replaceChildren(...usage.meters.map((m) => el('option', { value: m.meter, text: meterLabel(m.meter) })));
    if (usage.meters.some((m) => m.meter === keep)) select.value = keep;
  }

  // The chart and the endpoints table show the same meter: endpoints of
  // different meters (calls, tokens, bytes) cannot be ranked together.
  $('chart-meter').addEventListener('change', () => {
    run('chart', loadChart);
    run('endpoints', loadEndpoints);
  });

  async function loadChart() {
    const meter = $('chart-meter').value;
    if (!meter) return;
    // The whole month, first to last day; to is inclusive (usageSeries
    // ends at today, so the current month shows the days so far).
    const from = usage.periodStart.slice(0, 10);
    const to = new Date(new Date(usage.periodEnd) - 86400000).toISOString().slice(0, 10);
    const data = await gql(`query Series($meter: String!, $from: Date!, $to: Date!) {
      usageSeries(meter: $meter, from: $from, to: $to) { date used }
    }`, { meter, from, to });
    renderChart(meter, data.usageSeries);
  }

  // A round number at or above n for the top of the axis: 1, 2 or 5 × 10^k.
  function niceCeil(n) {
    if (n <= 0) return 1;
    const p = 10 ** Math.floor(Math.log10(n));
    for (const m of [1, 2, 5, 10]) if (m * p >= n) return m * p;
    return 10 * p;
  }

  const SVG = 'http://www.w3.org/2000/svg';
  function svg(tag, attrs, ...children) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    for (const c of children) e.append(c);
    return e;
  }

  let lastChart = null;

  // The chart is drawn at the width it is shown at, so that its text keeps
  // its size on a phone; a resize draws it again.
  function renderChart(meter, points) {
    lastChart = { meter, points };
    const W = Math.round(Math.max(300, Math.min(960, $('chart').clientWidth || 720)));
    const H = W < 500 ? 200 : 260;
    const left = 56, right = 8, top = 12, bottom = 28;
    const plotW = W - left - right, plotH = H - top - bottom;
    // Usage is counted in whole units: gridlines at whole steps of 1, 2 or
    // 5 × 10^k, at most five above zero (a top of 5 split in fourths used to
    // label 1.25 as "1.3").
    const step = Math.max(1, niceCeil(Math.max(0, ...points.map((p) => p.used)) / 4));
    const lines = Math.max(1, Math.ceil(Math.max(0, ...points.map((p) => p.used)) / step));
    const max = step * lines;
    const slot = plotW / Math.max(points.length, 1);
    const y = (v) => top + plotH - (plotH * Math.max(v, 0)) / max;

    const chart = svg('svg', {
      viewBox: `0 0 ${W} ${H}`, class: 'chart-svg', role: 'group',
      'aria-label': `Daily ${meterLabel(meter)}, ${points.length} days`, 'data-meter': meter,
    });
    // Y axis: a gridline with its label at each step.
    for (let i = 0; i <= lines; i++) {
      const v = step * i;
      chart.append(
        svg('line', { class: 'grid', x1: left, x2: W - right, y1: y(v), y2: y(v) }),
        svg('text', { class: 'axis y', 'data-value': String(v), x: left - 8, y: y(v) + 4, 'text-anchor': 'end' }, isBytes(meter) ? formatBytes(v) : compactFmt.format(v)));
    }
    // X axis: the day of the month, every fifth (or tenth, when narrow)
    // day, and the first.
    const every = slot < 12 ? 10 : 5;
    points.forEach((p, i) => {
      const day = Number(p.date.slice(8, 10));
      if (day === 1 || (day % every === 0 && points.length - i > 2)) {
        chart.append(svg('text', { class: 'axis', x: left + slot * (i + 0.5), y: H - bottom + 18, 'text-anchor': 'middle' }, String(day)));
      }
    });
    chart.append(svg('line', { class: 'baseline', x1: left, x2: W - right, y1: y(0), y2: y(0) }));

    // One focusable group per day: a full-height target, so a zero day can
    // be hovered and tabbed to, and the bar itself.
    points.forEach((p, i) => {
      const label = `${shortDayFmt.format(new Date(p.date + 'T00:00:00Z'))}: ${formatAmount(meter, p.used)}`;
      const x = left + slot * i;
      // One tab stop for the whole chart; arrow keys move between days.
      const g = svg('g', { class: 'day', tabindex: i === 0 ? '0' : '-1', role: 'img', 'aria-label': label, 'data-date': p.date, 'data-used': String(p.used) },
        svg('title', {}, label),
        svg('rect', { class: 'hit', x, y: top, width: slot, height: plotH }),
        svg('rect', { class: 'column', x: x + slot * 0.15, y: y(p.used), width: slot * 0.7, height: y(0) - y(p.used) }));
      const show = () => showTooltip(g, label);
      g.addEventListener('mouseenter', show);
      g.addEventListener('focus', show);
      g.addEventListener('mouseleave', hideTooltip);
      g.addEventListener('blur', hideTooltip);
      chart.append(g);
    });
    chart.addEventListener('keydown', (ev) => {
      const days = [...chart.querySelectorAll('g.day')];
      const at = days.indexOf(document.activeElement);
      if (at < 0) return;
      const to = { ArrowLeft: at - 1, ArrowRight: at + 1, Home: 0, End: days.length - 1 }[ev.key];
      if (to === undefined || to < 0 || to >= days.length) return;
      ev.preventDefault();
      days[at].setAttribute('tabindex', '-1');
      days[to].setAttribute('tabindex', '0');
      days[to].focus();
    });
    $('chart').replaceChildren(chart);
  }

  let resizeTimer = 0;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => lastChart && renderChart(lastChart.meter, lastChart.points), 150);
  });

  function showTooltip(target, text) {
    const tip = $('chart-tooltip');
    tip.textContent = text;
    tip.hidden = false;
    const box = $('chart').getBoundingClientRect();
    const r = target.getBoundingClientRect();
    // Styles set through the CSSOM are allowed by the page's strict CSP.
    const x = Math.min(Math.max(r.left - box.left + r.width / 2 - tip.offsetWidth / 2, 0), box.width - tip.offsetWidth);
    tip.style.left = x + 'px';
    tip.style.top = Math.max(r.top - box.top + 4, 0) + 'px';
  }

  function hideTooltip() { $('chart-tooltip').hidden = true; }

  // ------------------------------------------------------------- endpoints

  const TOP_ENDPOINTS = 10;

  async function loadEndpoints() {
    const meter = $('chart-meter').value;
    if (!meter) return;
    // The server picks the top rows: only those are sent.
    const data = await gql(`query Endpoints($period: String, $meter: String, $first: Int) {
      usageByEndpoint(period: $period, meter: $meter, first: $first) { endpoint meter used }
    }`, { period: periodOf(usage.periodStart), meter, first: TOP_ENDPOINTS });
    $('endpoints-meter').textContent = meterLabel(meter);
    const rows = data.usageByEndpoint;
    $('endpoints').querySelector('tbody').replaceChildren(...rows.map((r) => el('tr', {},
      el('td', {}, el('code', { text: r.endpoint })),
      el('td', { class: 'num', text: formatAmount(r.meter, r.used) }))));
    $('endpoints').hidden = rows.length === 0;
    $('endpoints-empty').hidden = rows.length > 0;
  }

  // -------------------------------------------------------------- invoices

  const INVOICE_PAGE = 10;
  // cursors[i] is the `after` that loads page i; page 0 starts at the top.
  const invoicePages = { cursors: [null], index: 0, hasNext: false };

  async function loadInvoices() {
    const data = await gql(`query Invoices($first: Int, $after: String) {
      invoices(first: $first, after: $after) {
        nodes { id number status total currency createdAt hostedInvoiceUrl pdfUrl }
        pageInfo { hasNextPage endCursor }
      }
    }`, { first: INVOICE_PAGE, after: invoicePages.cursors[invoicePages.index] });
    const conn = data.invoices;
    invoicePages.hasNext = conn.pageInfo.hasNextPage;
    invoicePages.cursors[invoicePages.index + 1] = conn.pageInfo.endCursor;
    const tone = { PAID: 'ok', OPEN: 'warn', DRAFT: 'neutral', VOID: 'neutral', UNCOLLECTIBLE: 'bad' };
    $('invoices').querySelector('tbody').replaceChildren(...conn.nodes.map((inv) => el('tr', { 'data-invoice': inv.id },
      el('td', { class: 'inv-number', text: inv.number || inv.id }),
      el('td', { text: formatDate(inv.createdAt) }),
      el('td', { class: 'num', text: formatMoney(inv.total, inv.currency) }),
      el('td', {}, el('span', { class: 'badge ' + (tone[inv.status] || 'neutral'), text: words(inv.status) })),
      el('td', { class: 'links' },
        inv.hostedInvoiceUrl ? el('a', { href: inv.hostedInvoiceUrl, target: '_blank', rel: 'noopener noreferrer', text: 'View' }) : null,
        inv.hostedInvoiceUrl && inv.pdfUrl ? ' · ' : null,
        inv.pdfUrl ? el('a', { href: inv.pdfUrl, target: '_blank', rel: 'noopener noreferrer', text: 'PDF' }) : null))));
    const empty = conn.nodes.length === 0 && invoicePages.index === 0;
    $('invoices').hidden = empty;
    $('invoices-empty').hidden = !empty;
    $('invoices-prev').disabled = invoicePages.index === 0;
    $('invoices-next').disabled = !invoicePages.hasNext;
    $('invoices-page').textContent = empty ? '' : `Page ${invoicePages.index + 1}`;
  }

  function turnInvoicePage(step) {
    const before = invoicePages.index;
    invoicePages.index += step;
    run('invoices', async () => {
      try {
        await loadInvoices();
      } catch (e) {
        invoicePages.index = before;
        throw e;
      }
    });
  }
  $('invoices-next').addEventListener('click', () => turnInvoicePage(1));
  $('invoices-prev').addEventListener('click', () => turnInvoicePage(-1));

  // -------------------------------------------------------------- API keys

  // The API has no "who am I" field. A token's scopes are in its payload; a
  // cookie cannot be read by script, so ask the server with a createApiKey
  // that fails validation: it creates nothing, and it answers FORBIDDEN
  // when the session may not write.
  async function detectWriteScope() {
    if (session.token) {
      const scopes = scopesOf(session.token);
      if (scopes) return scopes.includes('billing:write');
    }
    try {
      await gql(`mutation ProbeWriteScope { createApiKey(input: {name: "", scopes: []}) { userErrors { code } } }`);
      return true;
    } catch (e) {
      if (e instanceof APIError && e.code === 'FORBIDDEN') return false;
      throw e;
    }
  }

  const SCOPE_NAMES = { BILLING_READ: 'billing:read', BILLING_WRITE: 'billing:write', USAGE_WRITE: 'usage:write' };

  async function loadKeys() {
    const data = await gql(`query ApiKeys {
      apiKeys { id name prefix scopes createdAt lastUsedAt revokedAt }
    }`);
    const keys = data.apiKeys;
    $('keys').querySelector('tbody').replaceChildren(...keys.map((k) => el('tr', { 'data-key': k.id, class: k.revokedAt ? 'revoked' : null },
      el('td', { text: k.name }),
      el('td', {}, el('code', { class: 'key-prefix', text: k.prefix + '…' })),
      el('td', { text: k.scopes.map((s) => SCOPE_NAMES[s] || s).join(', ') }),
      el('td', { text: formatDate(k.createdAt) }),
      el('td', { text: k.lastUsedAt ? formatDate(k.lastUsedAt) : 'Never' }),
      el('td', {}, k.revokedAt
        ? el('span', { class: 'badge neutral', text: 'Revoked ' + formatDate(k.revokedAt) })
        : el('button', { type: 'button', class: 'danger small revoke', 'aria-label': `Revoke ${k.name}`, text: 'Revoke', onclick: () => revoke(k) })))));
    $('keys').hidden = keys.length === 0;
    $('keys-empty').hidden = keys.length > 0;
  }

  async function revoke(key) {
    if (!await confirmAction(`Revoke “${key.name}”?`, `Requests made with ${key.prefix}… fail from now on. This cannot be undone.`, 'Revoke key')) return;
    showError('keys-error', '');
    run('revoke', async () => {
      try {
        const data = await gql(`mutation Revoke($id: ID!) { revokeApiKey(id: $id) { apiKey { id revokedAt } userErrors { message } } }`, { id: key.id });
        const ue = data.revokeApiKey.userErrors;
        if (ue.length) return showError('keys-error', ue.map((e) => e.message).join(' '));
      } catch (e) {
        if (e instanceof APIError) return showError('keys-error', e.message);
        throw e;
      }
      await loadKeys();
    });
  }

  const keyFieldErrors = { 'input.name': 'key-name-error', 'input.contactEmail': 'key-email-error', 'input.scopes': 'key-scopes-error' };

  $('key-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const form = ev.target;
    const input = {
      name: form.elements.name.value,
      scopes: [...form.querySelectorAll('input[name=scope]:checked')].map((c) => c.value),
    };
    if (form.elements.contactEmail.value.trim()) input.contactEmail = form.elements.contactEmail.value.trim();
    Object.values(keyFieldErrors).forEach((id) => showError(id, ''));
    showError('key-form-error', '');
    run('create-key', () => withBusy($('key-create'), async () => {
      const data = await gql(`mutation CreateKey($input: CreateApiKeyInput!) {
        createApiKey(input: $input) { apiKey { id prefix } secret userErrors { field message code } }
      }`, { input });
      const r = data.createApiKey;
      if (r.userErrors.length) {
        const general = [];
        for (const e of r.userErrors) {
          const id = keyFieldErrors[e.field];
          if (id) showError(id, e.message);
          else general.push(e.message);
        }
        showError('key-form-error', general.join(' '));
        const first = r.userErrors.map((e) => keyFieldErrors[e.field]).find(Boolean);
        if (first === 'key-name-error') $('key-name').focus();
        return;
      }
      form.reset();
      showSecret(r.secret);
      await loadKeys();
    }));
  });

  // The secret is in this payload and nowhere else, ever: it is shown until
  // "Done", then removed from the page.
  function showSecret(secret) {
    $('secret-value').textContent = secret;
    $('secret-copied').textContent = '';
    $('secret-box').hidden = false;
    $('secret-copy').focus();
  }

  $('secret-copy').addEventListener('click', async () => {
    const secret = $('secret-value').textContent;
    try {
      await navigator.clipboard.writeText(secret);
      $('secret-copied').textContent = 'Copied.';
    } catch {
      // No clipboard access (an insecure origin, or denied): select the
      // text so that the user can copy it by hand.
      const range = document.createRange();
      range.selectNodeContents($('secret-value'));
      getSelection().removeAllRanges();
      getSelection().addRange(range);
      $('secret-copied').textContent = 'Selected: press Ctrl+C (⌘C) to copy.';
    }
  });

  $('secret-done').addEventListener('click', () => {
    $('secret-value').textContent = '';
    $('secret-box').hidden = true;
    $('key-name').focus();
  });

  // ----------------------------------------------------------------- start

  // boot learns who is signed in and what they may do, then loads every
  // section. If it fails, Retry runs it again from the top.
  async function boot() {
    // Scopes first: the plan section shows write controls only when they
    // would work.
    session.canWrite = await detectWriteScope();
    await loadAccount();
    $('state-loading').hidden = true;
    $('content').hidden = false;
    $('keys-section').hidden = !session.canWrite;
    await Promise.all([
      run('usage', () => loadUsage(null)),
      run('invoices', loadInvoices),
      session.canWrite ? run('keys', loadKeys) : null,
    ]);
    // Tests and embedding hosts can wait for this.
    document.body.dataset.ready = 'true';
  }

  function restart() {
    failed.clear();
    $('banner').hidden = true;
    $('state-expired').hidden = true;
    $('content').hidden = true;
    $('state-loading').hidden = false;
    delete document.body.dataset.ready;
    run('boot', boot);
  }

  // A host may hand an open page a fresh token (#token=…) without a reload.
  window.addEventListener('hashchange', () => {
    const token = takeFragmentToken();
    if (token) {
      session.token = token;
      restart();
    }
  });

  session.token = takeFragmentToken();
  run('boot', boot);
})();
