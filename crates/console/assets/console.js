// The console's entry point: reads the server's settings, asks for an access key when the server
// runs with --auth (or says plainly that it is open), and routes `#/…` to the pages.

import { configure, credentials, forgetCredentials, kinesis, saveCredentials, serverConfig } from "./aws.js";
import { errorBox, fill, h } from "./dom.js";
import { firehosePage, lambdaPage, sqlPage } from "./services.js";
import { streamPage } from "./stream.js";
import { streamsPage } from "./streams.js";

const main = document.getElementById("main");
const banner = document.getElementById("banner");
const account = document.getElementById("account");
let stopPage = () => {};

function route() {
  stopPage();
  const config = serverConfig();
  const path = location.hash.replace(/^#/, "") || "/";
  if (config.auth && !credentials()) {
    stopPage = loginPage(main);
    return;
  }
  for (const link of document.querySelectorAll("#nav a")) {
    link.classList.toggle("active", path === link.getAttribute("href").slice(1) || (link.dataset.prefix && path.startsWith(link.dataset.prefix)));
  }
  const stream = /^\/stream\/([^/]+)(?:\/(\w+))?$/.exec(path);
  if (stream) stopPage = streamPage(main, decodeURIComponent(stream[1]), stream[2]);
  else if (path === "/firehose") stopPage = firehosePage(main);
  else if (path === "/lambda") stopPage = lambdaPage(main);
  else if (path === "/sql") stopPage = sqlPage(main);
  else stopPage = streamsPage(main);
}

/** Asks for an access key and secret; they are checked with ListStreams before being kept. */
function loginPage(target) {
  const id = h("input", { id: "login-key", name: "accessKeyId", autocomplete: "username", required: true });
  const secret = h("input", { id: "login-secret", name: "secretAccessKey", type: "password", autocomplete: "current-password", required: true });
  const result = h("div", { id: "login-result", role: "alert" });
  const submit = async (event) => {
    event.preventDefault();
    const keys = { accessKeyId: id.value.trim(), secretAccessKey: secret.value };
    try {
      await kinesis("ListStreams", { Limit: 1 }, keys);
      saveCredentials(keys);
      showAccount();
      route();
    } catch (error) {
      fill(result, errorBox(error));
    }
  };
  fill(
    target,
    h("h1", {}, "Sign in"),
    h("p", {}, "This server checks every request's signature (--auth). Enter an access key and secret from its credentials file; they are kept in this tab only."),
    h(
      "form",
      { id: "login-form", onsubmit: submit },
      h("label", {}, "Access key ID", id),
      h("label", {}, "Secret access key", secret),
      h("button", { type: "submit", id: "login-submit" }, "Sign in"),
    ),
    result,
  );
  return () => {};
}

function showAccount() {
  const keys = credentials();
  if (!serverConfig().auth || !keys) {
    account.replaceChildren();
    return;
  }
  const signOut = () => {
    forgetCredentials();
    showAccount();
    route();
  };
  fill(account, `Signed in as ${keys.accessKeyId} `, h("button", { type: "button", id: "logout", onclick: signOut }, "Sign out"));
}

async function start() {
  try {
    const response = await fetch("/console/config.json");
    configure(await response.json());
  } catch (error) {
    fill(main, errorBox(error));
    return;
  }
  const config = serverConfig();
  fill(
    banner,
    config.auth
      ? h("p", { class: "secure", id: "auth-banner" }, `Requests are signed (SigV4, region ${config.region}).`)
      : h(
          "p",
          { class: "open", id: "open-banner" },
          "This server is open: it runs without --auth, so anyone who can reach it can read, write and delete its streams.",
        ),
  );
  showAccount();
  window.addEventListener("hashchange", route);
  route();
}

start();
