// A small line chart on a canvas: one line per series over the last `capacity` samples. Written
// here rather than taken from a charting library so the console needs no npm; it draws what the
// console needs (rates over the last minute) and nothing more. The latest values are also kept
// in the canvas's data attributes, which the browser test reads.

const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777"];

export class LineChart {
  constructor(canvas, { capacity = 60, unit = "" } = {}) {
    this.canvas = canvas;
    this.capacity = capacity;
    this.unit = unit;
    /** series name → samples, oldest first, at most `capacity` */
    this.series = new Map();
    this.pushes = 0;
  }

  /** One sample per series (`values`: name → number); series not named get no sample. */
  push(values) {
    for (const [name, value] of Object.entries(values)) {
      const samples = this.series.get(name) ?? [];
      samples.push(value);
      if (samples.length > this.capacity) samples.shift();
      this.series.set(name, samples);
    }
    for (const name of [...this.series.keys()]) if (!(name in values)) this.series.delete(name);
    this.pushes += 1;
    const latest = Object.values(values).reduce((sum, value) => sum + value, 0);
    this.canvas.dataset.latest = String(latest);
    this.canvas.dataset.max = String(Math.max(Number(this.canvas.dataset.max ?? 0), latest));
    this.canvas.dataset.samples = String(this.pushes);
    this.draw();
  }

  draw() {
    const { canvas } = this;
    const ratio = globalThis.devicePixelRatio || 1;
    const width = canvas.clientWidth || 480;
    const height = canvas.clientHeight || 160;
    canvas.width = width * ratio;
    canvas.height = height * ratio;
    const g = canvas.getContext("2d");
    g.scale(ratio, ratio);
    g.clearRect(0, 0, width, height);
    const all = [...this.series.values()].flat();
    const top = niceCeiling(Math.max(1, ...all));
    const left = 56;
    const bottom = height - 18;
    g.font = "11px system-ui, sans-serif";
    g.fillStyle = "#6b7280";
    g.strokeStyle = "#e5e7eb";
    for (const fraction of [0, 0.5, 1]) {
      const y = bottom - fraction * (bottom - 8);
      g.beginPath();
      g.moveTo(left, y);
      g.lineTo(width - 4, y);
      g.stroke();
      g.fillText(formatNumber(top * fraction) + this.unit, 2, y + 4);
    }
    g.fillText(`last ${this.capacity} s`, left, height - 4);
    const step = (width - 4 - left) / Math.max(1, this.capacity - 1);
    let legendX = left + 6;
    let legendY = 12;
    [...this.series.entries()].forEach(([name, samples], index) => {
      const color = COLORS[index % COLORS.length];
      g.strokeStyle = color;
      g.lineWidth = 2;
      g.beginPath();
      samples.forEach((value, i) => {
        const x = left + (this.capacity - samples.length + i) * step;
        const y = bottom - (value / top) * (bottom - 8);
        if (i === 0) g.moveTo(x, y);
        else g.lineTo(x, y);
      });
      g.stroke();
      g.fillStyle = color;
      const labelWidth = g.measureText(name).width + 16;
      if (legendX + labelWidth > width && legendX > left + 6) {
        legendX = left + 6;
        legendY += 13;
      }
      g.fillText(name, legendX, legendY);
      legendX += labelWidth;
    });
  }
}

function niceCeiling(value) {
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const factor of [1, 2, 5, 10]) if (factor * magnitude >= value) return factor * magnitude;
  return 10 * magnitude;
}

/** 1234567 → "1.2M" */
export function formatNumber(value) {
  const units = [
    [1e9, "G"],
    [1e6, "M"],
    [1e3, "k"],
  ];
  for (const [size, suffix] of units) if (Math.abs(value) >= size) return `${(value / size).toFixed(1)}${suffix}`;
  return Number.isInteger(value) ? String(value) : value.toFixed(1);
}
