// Render a drift report in jsdom with every network request rejected, then list what the page
// requested, the script errors, and which section titles were rendered.
//
// Usage: npm install jsdom@24 && node monitoring/offline_check.js drift_report.html [title ...]
// Exit status 0 when the page requested nothing, raised no script error and rendered every
// title; 1 otherwise.
const fs = require("fs");
const { JSDOM, ResourceLoader, VirtualConsole } = require("jsdom");

const SETTLE_MS = 8000;
const [page, ...titles] = process.argv.slice(2);
const requested = [];
const errors = [];

class RejectingLoader extends ResourceLoader {
  fetch(url) {
    requested.push(url);
    return null;
  }
}

// jsdom lacks these browser APIs, and the report bundle calls them while laying out charts.
function addBrowserStubs(window) {
  const listeners = { addListener() {}, removeListener() {} };
  window.matchMedia = () => ({ matches: false, media: "", ...listeners,
    addEventListener() {}, removeEventListener() {} });
  window.ResizeObserver = class { observe() {} unobserve() {} disconnect() {} };
  window.URL.createObjectURL = () => "blob:offline";
}

const console_ = new VirtualConsole();
console_.on("jsdomError", (error) => errors.push(String(error.message).slice(0, 300)));
const dom = new JSDOM(fs.readFileSync(page, "utf8"), {
  runScripts: "dangerously",
  resources: new RejectingLoader(),
  pretendToBeVisual: true,
  virtualConsole: console_,
  url: "file:///drift_report.html",
  beforeParse: addBrowserStubs,
});

setTimeout(() => {
  const body = dom.window.document.body.cloneNode(true);
  body.querySelectorAll("script").forEach((script) => script.remove());
  const text = body.textContent;
  const missing = ["verdict:", ...titles].filter((title) => !text.includes(title));
  console.log(JSON.stringify({ requested, errors, renderedChars: text.length, missing }));
  process.exit(requested.length || errors.length || missing.length ? 1 : 0);
}, SETTLE_MS);
