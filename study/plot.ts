/** Minimal SVG charts for the study: grouped bars with error bars, and line charts. No dependencies. */

const W = 720,
  H = 380,
  M = { l: 60, r: 160, t: 40, b: 50 };
const COLORS = ['#4e79a7', '#e15759', '#59a14f', '#f28e2b', '#b07aa1', '#76b7b2', '#9c755f'];
const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const num = (x: number): string => (Math.round(x * 100) / 100).toString();

function frame(title: string, yLabel: string, yMax: number, xLabel: string): { parts: string[]; y: (v: number) => number } {
  const ph = H - M.t - M.b;
  const y = (v: number): number => M.t + ph - (v / yMax) * ph;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2 - M.r / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${esc(title)}</text>`,
  ];
  for (let i = 0; i <= 5; i++) {
    const v = (yMax * i) / 5;
    parts.push(
      `<line x1="${M.l}" x2="${W - M.r}" y1="${num(y(v))}" y2="${num(y(v))}" stroke="#ddd"/>`,
      `<text x="${M.l - 6}" y="${num(y(v) + 4)}" text-anchor="end">${num(v)}</text>`,
    );
  }
  parts.push(
    `<line x1="${M.l}" x2="${M.l}" y1="${M.t}" y2="${H - M.b}" stroke="black"/>`,
    `<line x1="${M.l}" x2="${W - M.r}" y1="${H - M.b}" y2="${H - M.b}" stroke="black"/>`,
    `<text transform="translate(16 ${M.t + (H - M.t - M.b) / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`,
    `<text x="${M.l + (W - M.l - M.r) / 2}" y="${H - 10}" text-anchor="middle">${esc(xLabel)}</text>`,
  );
  return { parts, y };
}

function legend(parts: string[], names: readonly string[]): void {
  names.forEach((n, i) =>
    parts.push(
      `<rect x="${W - M.r + 16}" y="${M.t + i * 20}" width="12" height="12" fill="${COLORS[i % COLORS.length]}"/>`,
      `<text x="${W - M.r + 34}" y="${M.t + i * 20 + 10}">${esc(n)}</text>`,
    ),
  );
}

const niceMax = (v: number): number => {
  const c = [1, 2, 5, 10, 20, 25, 50, 100];
  return c.find((x) => x >= v * 1.1) ?? Math.ceil(v);
};

/** Grouped bars: groups × series, each a mean with a ± error bar. */
export function barChart(
  title: string,
  yLabel: string,
  groups: readonly string[],
  series: readonly string[],
  mean: (g: number, s: number) => number,
  err: (g: number, s: number) => number,
): string {
  let max = 0;
  groups.forEach((_, g) =>
    series.forEach((_, s) => {
      max = Math.max(max, mean(g, s) + err(g, s));
    }),
  );
  const { parts, y } = frame(title, yLabel, niceMax(max), '');
  const gw = (W - M.l - M.r) / groups.length,
    bw = (gw * 0.8) / series.length;
  groups.forEach((gName, g) => {
    const gx = M.l + g * gw + gw * 0.1;
    series.forEach((_, s) => {
      const m = mean(g, s),
        e = err(g, s),
        x = gx + s * bw;
      parts.push(`<rect x="${num(x)}" y="${num(y(m))}" width="${num(bw * 0.9)}" height="${num(y(0) - y(m))}" fill="${COLORS[s % COLORS.length]}"/>`);
      if (e > 0) {
        const cx = x + bw * 0.45;
        parts.push(
          `<line x1="${num(cx)}" x2="${num(cx)}" y1="${num(y(m + e))}" y2="${num(y(Math.max(0, m - e)))}" stroke="black"/>`,
          `<line x1="${num(cx - 4)}" x2="${num(cx + 4)}" y1="${num(y(m + e))}" y2="${num(y(m + e))}" stroke="black"/>`,
          `<line x1="${num(cx - 4)}" x2="${num(cx + 4)}" y1="${num(y(Math.max(0, m - e)))}" y2="${num(y(Math.max(0, m - e)))}" stroke="black"/>`,
        );
      }
      parts.push(`<text x="${num(x + bw * 0.45)}" y="${num(y(m + e) - 4)}" text-anchor="middle" font-size="10">${m.toFixed(1)}</text>`);
    });
    parts.push(`<text x="${num(M.l + g * gw + gw / 2)}" y="${H - M.b + 18}" text-anchor="middle">${esc(gName)}</text>`);
  });
  legend(parts, series);
  parts.push('</svg>');
  return parts.join('\n');
}

/** Lines over a numeric x axis (x in [xMin, xMax]); points drawn as dots; optional horizontal reference lines. */
export function lineChart(
  title: string,
  xLabel: string,
  yLabel: string,
  lines: ReadonlyArray<{ name: string; points: ReadonlyArray<[number, number]> }>,
  refs: ReadonlyArray<{ name: string; y: number }> = [],
): string {
  const all = lines.flatMap((l) => l.points);
  const yMax = niceMax(Math.max(...all.map((p) => p[1]), ...refs.map((r) => r.y), 1e-9));
  const xMin = Math.min(...all.map((p) => p[0])),
    xMax = Math.max(...all.map((p) => p[0]));
  const { parts, y } = frame(title, yLabel, yMax, xLabel);
  const x = (v: number): number => M.l + 10 + ((v - xMin) / (xMax - xMin || 1)) * (W - M.l - M.r - 20);
  const ticks = [...new Set(all.map((p) => p[0]))].sort((a, b) => a - b);
  ticks.forEach((t) => parts.push(`<text x="${num(x(t))}" y="${H - M.b + 16}" text-anchor="middle" font-size="10">${t}</text>`));
  refs.forEach((r) =>
    parts.push(
      `<line x1="${M.l}" x2="${W - M.r}" y1="${num(y(r.y))}" y2="${num(y(r.y))}" stroke="#888" stroke-dasharray="5 4"/>`,
      `<text x="${W - M.r - 4}" y="${num(y(r.y) - 4)}" text-anchor="end" fill="#555">${esc(r.name)}</text>`,
    ),
  );
  lines.forEach((l, i) => {
    const c = COLORS[i % COLORS.length]!;
    parts.push(`<polyline fill="none" stroke="${c}" stroke-width="2" points="${l.points.map((p) => `${num(x(p[0]))},${num(y(p[1]))}`).join(' ')}"/>`);
    l.points.forEach((p) => parts.push(`<circle cx="${num(x(p[0]))}" cy="${num(y(p[1]))}" r="3.5" fill="${c}"/>`));
  });
  legend(
    parts,
    lines.map((l) => l.name),
  );
  parts.push('</svg>');
  return parts.join('\n');
}
