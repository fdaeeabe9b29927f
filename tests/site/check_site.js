// Crawls build/site/ in headless Chromium (Debian's, driven by playwright-core) and prints one JSON
// report on stdout; tests/site/test_site_browser.py asserts on it.
//
//   node check_site.js '{"base": "http://127.0.0.1:PORT/site/", "start": "index.html",
//                        "fileUrl": "file:///.../site/index.html", "artifacts": "/abs/dir",
//                        "screenshots": [{"page": "index.html", "name": "site-home.png"}]}'
//
// What it checks, page by page: no console error, page error, failed request or HTTP error; every
// internal link resolves (pages, downloads) and every #anchor exists on its target page; one h1 and
// no skipped heading level; text contrast (WCAG AA) for HTML and for the diagram's SVG text.  On the
// home page: the diagram's nodes, that no node's text overflows its box, and that the keyboard
// reaches the diagram's links and opens one.  Also: the site from file://, and the print stylesheet.
'use strict';
const fs = require('fs');
const path = require('path');
const { chromium } = require('playwright-core');

const config = JSON.parse(process.argv[2]);
const CHROMIUM = process.env.FHIRPKG_CHROMIUM || '/usr/bin/chromium';
// Without the background-networking flags Chromium's own connections are refused by a closed network.
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

// --- in-page probes (run inside the browser) ------------------------------------------------

function probePage() {
  const attr = (el, name) => el.getAttribute(name);
  const links = Array.from(document.querySelectorAll('a[href], area[href]')).map(a => {
    const raw = attr(a, 'href');
    let abs = null;
    try { abs = new URL(raw, document.baseURI).href; } catch (e) { abs = null; }
    return { raw, abs, text: (a.textContent || '').trim().slice(0, 80) };
  });
  const ids = Array.from(document.querySelectorAll('[id]')).map(e => e.id)
    .concat(Array.from(document.querySelectorAll('a[name]')).map(e => attr(e, 'name')));
  const dupIds = ids.filter((id, i) => ids.indexOf(id) !== i);
  const headings = Array.from(document.querySelectorAll('h1,h2,h3,h4,h5,h6')).map(h => Number(h.tagName[1]));
  const headingProblems = [];
  if (headings.filter(h => h === 1).length !== 1) headingProblems.push(`${headings.filter(h => h === 1).length} h1 elements`);
  for (let i = 1; i < headings.length; i++) {
    if (headings[i] > headings[i - 1] + 1) headingProblems.push(`h${headings[i - 1]} followed by h${headings[i]}`);
  }
  const external = Array.from(document.querySelectorAll('script, iframe, object, embed, link[href], img[src]'))
    .map(e => e.tagName.toLowerCase() + ' ' + (attr(e, 'src') || attr(e, 'href') || ''))
    .filter(s => !/^link (style\.css|data:,)$/.test(s));
  // contrast
  const parse = c => { const m = c.match(/rgba?\(([^)]+)\)/); if (!m) return null; const p = m[1].split(/[ ,/]+/).filter(Boolean).map(Number); return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 }; };
  const lum = c => { const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); }; return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b); };
  const ratio = (a, b) => { const x = lum(a), y = lum(b); return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05); };
  const blend = (fg, bg) => ({ r: fg.r * fg.a + bg.r * (1 - fg.a), g: fg.g * fg.a + bg.g * (1 - fg.a), b: fg.b * fg.a + bg.b * (1 - fg.a), a: 1 });
  const background = el => { for (let e = el; e; e = e.parentElement) { const c = parse(getComputedStyle(e).backgroundColor); if (c && c.a > 0) return c; } return { r: 255, g: 255, b: 255, a: 1 }; };
  const contrast = [];
  let checked = 0;
  for (const el of document.querySelectorAll('body *')) {
    if (el.closest('svg') || el.closest('details:not([open])') && !el.closest('summary')) continue;
    const own = Array.from(el.childNodes).some(n => n.nodeType === 3 && n.textContent.trim());
    if (!own) continue;
    const st = getComputedStyle(el);
    if (st.visibility === 'hidden' || st.display === 'none' || el.getClientRects().length === 0) continue;
    if (el.matches('.skip')) continue;  // off-screen until focused (checked when focused by the keyboard test)
    const fg = parse(st.color); if (!fg) continue;
    const bg = background(el);
    const r = ratio(blend(fg, bg), bg);
    const size = parseFloat(st.fontSize), bold = Number(st.fontWeight) >= 700;
    const need = (size >= 24 || (bold && size >= 18.66)) ? 3 : 4.5;
    checked++;
    if (r < need) contrast.push({ text: el.textContent.trim().slice(0, 60), ratio: Math.round(r * 100) / 100, need });
  }
  for (const t of document.querySelectorAll('svg.pathway tspan, svg.pathway text.rel')) {
    const group = t.closest('a, g.node, g.lane-group');
    const rect = group && group.querySelector('rect');
    const fg = parse(getComputedStyle(t).fill), bg = rect ? parse(getComputedStyle(rect).fill) : { r: 255, g: 255, b: 255, a: 1 };
    if (!fg || !bg) continue;
    const r = ratio(blend(fg, bg), bg);
    checked++;
    if (r < 4.5) contrast.push({ text: t.textContent.trim().slice(0, 60), ratio: Math.round(r * 100) / 100, need: 4.5, svg: true });
  }
  const svgs = Array.from(document.querySelectorAll('svg.pathway')).map(svg => {
    const labelled = (attr(svg, 'aria-labelledby') || '').split(/\s+/).filter(Boolean)
      .map(id => document.getElementById(id)).filter(e => e && e.textContent.trim()).length;
    const nodes = Array.from(svg.querySelectorAll('[data-option]'));
    const overflow = [];
    for (const n of nodes) {
      const rect = n.querySelector('rect').getBBox();
      const text = n.querySelector('text');
      const tb = text ? text.getBBox() : null;
      if (tb && (tb.x < rect.x || tb.y < rect.y || tb.x + tb.width > rect.x + rect.width + 0.5 || tb.y + tb.height > rect.y + rect.height + 0.5)) {
        overflow.push(n.getAttribute('data-option'));
      }
    }
    const box = svg.getBoundingClientRect();
    return {
      declared: Number(attr(svg, 'data-options')), nodes: nodes.length,
      options: nodes.map(n => n.getAttribute('data-option')),
      links: nodes.map(n => n.tagName.toLowerCase() === 'a' ? attr(n, 'href') : null),
      labelled, overflow, width: Math.round(box.width), height: Math.round(box.height),
    };
  });
  return {
    title: document.title, lang: document.documentElement.lang, links, ids, dupIds, headingProblems, external,
    contrast, contrastChecked: checked, svgs,
    stylesheet: getComputedStyle(document.querySelector('header.site') || document.body).backgroundColor,
  };
}

// --- driver -------------------------------------------------------------------------------

async function main() {
  const report = {
    pages: [], consoleErrors: [], brokenLinks: [], brokenAnchors: [], externalLinks: 0, externalLoads: [],
    headings: [], contrast: [], contrastChecked: 0, duplicateIds: [], missingLang: [], svgs: {},
    keyboard: {}, screenshots: [], file: {}, print: {}, downloads: {},
  };
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  let current = '';
  const problem = (kind, text) => report.consoleErrors.push({ page: current, kind, text: String(text).slice(0, 300) });
  page.on('console', m => { if (m.type() === 'error') problem('console', m.text()); });
  page.on('pageerror', e => problem('pageerror', e.message));
  page.on('requestfailed', r => problem('requestfailed', `${r.url()} ${r.failure() && r.failure().errorText}`));
  page.on('response', r => { if (r.status() >= 400) problem('http', `${r.status()} ${r.url()}`); });

  const base = new URL(config.base);
  const start = new URL(config.start, base).href;
  const queue = [start];
  const seen = new Set(queue);
  const pageIds = {};
  const anchorsWanted = [];
  const otherTargets = new Map();  // non-HTML internal targets -> first referrer
  while (queue.length) {
    const url = queue.shift();
    current = url.slice(base.href.length) || url;
    const resp = await page.goto(url, { waitUntil: 'load' });
    if (!resp || resp.status() !== 200) { report.brokenLinks.push({ from: '(crawl)', href: url, status: resp && resp.status() }); continue; }
    const info = await page.evaluate(probePage);
    report.pages.push({ path: current, title: info.title, links: info.links.length });
    pageIds[url] = new Set(info.ids);
    if (info.dupIds.length) report.duplicateIds.push({ page: current, ids: Array.from(new Set(info.dupIds)).slice(0, 10) });
    if (info.lang !== 'en' || !info.title) report.missingLang.push(current);
    for (const h of info.headingProblems) report.headings.push({ page: current, problem: h });
    for (const c of info.contrast) report.contrast.push(Object.assign({ page: current }, c));
    report.contrastChecked += info.contrastChecked;
    for (const e of info.external) report.externalLoads.push({ page: current, element: e });
    if (info.svgs.length) report.svgs[current] = info.svgs;
    for (const l of info.links) {
      if (!l.abs) { report.brokenLinks.push({ from: current, href: l.raw, status: 'unparseable' }); continue; }
      const target = new URL(l.abs);
      if (target.origin !== base.origin) {
        if (/^https?:$/.test(target.protocol)) report.externalLinks++;
        else report.brokenLinks.push({ from: current, href: l.raw, status: `scheme ${target.protocol}` });
        continue;
      }
      const hash = target.hash ? decodeURIComponent(target.hash.slice(1)) : '';
      target.hash = '';
      const clean = target.href;
      if (hash) anchorsWanted.push({ from: current, href: l.raw, page: clean, id: hash });
      if (clean.startsWith(base.href) && clean.endsWith('.html')) {
        if (!seen.has(clean)) { seen.add(clean); queue.push(clean); }
      } else if (!otherTargets.has(clean)) {
        otherTargets.set(clean, { from: current, href: l.raw });
      }
    }
  }
  for (const a of anchorsWanted) {
    const ids = pageIds[a.page];
    if (!ids) report.brokenAnchors.push(Object.assign({ reason: 'page not crawled' }, a));
    else if (!ids.has(a.id)) report.brokenAnchors.push(Object.assign({ reason: 'no such id' }, a));
  }
  for (const [url, ref] of otherTargets) {
    const r = await context.request.get(url);
    report.downloads[url.slice(base.origin.length)] = r.status();
    if (r.status() !== 200) report.brokenLinks.push({ from: ref.from, href: ref.href, status: r.status() });
  }

  // keyboard: the skip link comes first, Tab reaches every diagram node, Enter opens one
  current = config.start;
  await page.goto(start, { waitUntil: 'load' });
  const focusOrder = [];
  for (let i = 0; i < 400; i++) {
    await page.keyboard.press('Tab');
    const f = await page.evaluate(() => {
      const e = document.activeElement;
      if (!e || e === document.body) return null;
      const inSvg = !!e.closest('svg');
      const r = e.getBoundingClientRect();
      return { tag: e.tagName.toLowerCase(), option: e.getAttribute('data-option'), inSvg, cls: e.getAttribute('class') || '',
        visible: r.width > 0 && r.height > 0, outline: getComputedStyle(inSvg ? e.querySelector('rect') : e)[inSvg ? 'stroke' : 'outlineStyle'] };
    });
    if (!f || (i > 0 && f.cls === 'skip')) break;  // past the last link, or wrapped around
    focusOrder.push(f);
  }
  const svgFocus = focusOrder.filter(f => f.inSvg && f.option);
  report.keyboard = {
    tabStops: focusOrder.length, first: focusOrder[0] || null,
    diagramNodesReached: Array.from(new Set(svgFocus.map(f => f.option))),
    skipLinkFirst: !!(focusOrder[0] && focusOrder[0].cls === 'skip'),
    allVisible: focusOrder.every(f => f.visible),
  };
  if (svgFocus.length) {
    await page.goto(start, { waitUntil: 'load' });
    await page.focus(`svg.pathway [data-option="${svgFocus[0].option}"]`);
    await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.keyboard.press('Enter')]);
    report.keyboard.enterOpened = page.url().slice(base.href.length);
  }

  // screenshots (test artifacts)
  fs.mkdirSync(config.artifacts, { recursive: true });
  for (const s of config.screenshots) {
    current = s.page;
    await page.goto(new URL(s.page, base).href, { waitUntil: 'load' });
    const file = path.join(config.artifacts, s.name);
    await page.screenshot({ path: file, fullPage: true });
    report.screenshots.push({ page: s.page, file, bytes: fs.statSync(file).size });
    if (s.viewport) {
      const vp = path.join(config.artifacts, s.name.replace(/\.png$/, '-viewport.png'));
      await page.screenshot({ path: vp });
      report.screenshots.push({ page: s.page, file: vp, bytes: fs.statSync(vp).size });
    }
  }

  // print: navigation and collapsed JSON hidden, a PDF of the home page as an artifact
  current = config.start + ' (print)';
  await page.goto(start, { waitUntil: 'load' });
  await page.emulateMedia({ media: 'print' });
  report.print = await page.evaluate(() => ({
    navHidden: getComputedStyle(document.querySelector('header.site nav')).display === 'none',
    diagramShown: getComputedStyle(document.querySelector('svg.pathway') || document.body).display !== 'none',
  }));
  const pdf = path.join(config.artifacts, 'site-home.pdf');
  await page.pdf({ path: pdf, format: 'A4', printBackground: true });
  report.print.pdfBytes = fs.statSync(pdf).size;
  await page.emulateMedia({ media: 'screen' });

  // file://: the same pages work without a server
  if (config.fileUrl) {
    current = config.fileUrl;
    const before = report.consoleErrors.length;
    await page.goto(config.fileUrl, { waitUntil: 'load' });
    const info = await page.evaluate(probePage);
    const firstLink = info.svgs.length && info.svgs[0].links.find(Boolean);
    let opened = null;
    if (firstLink) {
      await page.goto(new URL(firstLink, config.fileUrl).href, { waitUntil: 'load' });
      opened = await page.evaluate(() => document.querySelector('h1') && document.querySelector('h1').textContent);
    }
    report.file = { stylesheet: info.stylesheet, nodes: info.svgs.length ? info.svgs[0].nodes : 0,
      errors: report.consoleErrors.length - before, opened };
  }
  await browser.close();
  process.stdout.write(JSON.stringify(report));
}

main().catch(e => { process.stderr.write(String(e && e.stack || e) + '\n'); process.exit(2); });
