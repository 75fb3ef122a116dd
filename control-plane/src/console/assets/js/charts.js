// Small time-series charts (sparklines) drawn as SVG, for the overview's per-region charts.

const SVG = 'http://www.w3.org/2000/svg';
const WIDTH = 220;
const HEIGHT = 44;
const PAD = 3;

function svgEl(tag, attrs) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

/**
 * A chart of one or more series over shared times.
 * @param {string} title  shown above the chart, with the latest value of the first series
 * @param {number[]} times  sample times (ms since epoch), oldest first
 * @param {{label: string, values: (number|null)[], tone: string}[]} series  a missing value breaks the line
 * @param {(v: number) => string} format  how a value is written
 */
export function sparkline(title, times, series, format, testid) {
  const all = series.flatMap((s) => s.values).filter((v) => v != null && Number.isFinite(v));
  const max = Math.max(1, ...all);
  const t0 = times[0] ?? 0;
  const span = Math.max(1, (times[times.length - 1] ?? 0) - t0);
  const x = (t) => PAD + ((t - t0) / span) * (WIDTH - 2 * PAD);
  const y = (v) => HEIGHT - PAD - (v / max) * (HEIGHT - 2 * PAD);
  const svg = svgEl('svg', { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, class: 'spark-svg', role: 'img', 'aria-label': title });
  svg.appendChild(svgEl('line', { x1: PAD, x2: WIDTH - PAD, y1: HEIGHT - PAD, y2: HEIGHT - PAD, class: 'spark-axis' }));
  for (const s of series) {
    // One polyline per run of known values, so a gap (the control plane was down) stays visible.
    let run = [];
    const flush = () => {
      if (run.length === 1) svg.appendChild(svgEl('circle', { cx: run[0][0], cy: run[0][1], r: 1.8, class: `spark-${s.tone}` }));
      if (run.length > 1) svg.appendChild(svgEl('polyline', { points: run.map((p) => p.join(',')).join(' '), class: `spark-line spark-${s.tone}` }));
      run = [];
    };
    s.values.forEach((v, i) => {
      if (v == null || !Number.isFinite(v)) flush();
      else run.push([x(times[i]).toFixed(1), y(v).toFixed(1)]);
    });
    flush();
  }
  const latest = series.map((s) => {
    const last = [...s.values].reverse().find((v) => v != null);
    return `${last == null ? '–' : format(last)} ${s.label}`;
  }).join(' · ');
  const tip = svgEl('title', {});
  tip.textContent = `${title}: ${latest} (max ${format(max)})`;
  svg.appendChild(tip);
  const fig = document.createElement('figure');
  fig.className = 'spark';
  fig.setAttribute('data-testid', testid);
  fig.setAttribute('data-points', String(times.length));
  const cap = document.createElement('figcaption');
  const name = document.createElement('span');
  name.textContent = title;
  const value = document.createElement('span');
  value.className = 'spark-value';
  value.textContent = latest;
  cap.append(name, value);
  fig.append(cap, svg);
  return fig;
}
