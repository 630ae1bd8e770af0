// DOM building for the pages. Text always goes in as text nodes (never innerHTML), so record
// data, stream names and error messages cannot become markup.

/** `h("a", { href: "#/" }, "Streams")`; attributes starting with `on` are listeners. */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

/** A table of `rows` (arrays of cells) under `headings`. */
export function table(headings, rows, attributes = {}) {
  return h(
    "table",
    attributes,
    h("thead", {}, h("tr", {}, headings.map((heading) => h("th", {}, heading)))),
    h("tbody", {}, rows.map((row) => h("tr", {}, row.map((cell) => h("td", {}, cell))))),
  );
}

/** Replaces an element's children. */
export function fill(element, ...children) {
  element.replaceChildren();
  element.append(...children.flat().filter((child) => child !== undefined && child !== null));
  return element;
}

/** An error shown in place of what failed to load. */
export function errorBox(error) {
  return h("p", { class: "error", role: "alert" }, String(error.message ?? error));
}

export function formatTime(value) {
  if (value === undefined || value === null || value === "") return "—";
  const date = typeof value === "number" ? new Date(value < 1e12 ? value * 1000 : value) : new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

/** Runs `task` now and every `ms` until the returned stop function is called; errors go to `onError`. */
export function every(ms, task, onError) {
  let stopped = false;
  let timer;
  const run = async () => {
    try {
      await task();
    } catch (error) {
      onError?.(error);
    }
    if (!stopped) timer = setTimeout(run, ms);
  };
  run();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
