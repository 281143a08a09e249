// Opens a link from one of the platform's emails in headless Chromium, as a user would, and
// reports what the page then says. Used by the platform tests (a real browser, the real
// pages served through NGINX, the token in the URL fragment).
//
//   node follow-link.cjs <playwright-core dir> <chromium binary> <url> [new password]
//
// Prints one JSON line: {"outcome": "ok"|"error", "status": <the page's message>,
// "address": <the address bar after the page ran>}.
"use strict";

const [, , playwrightDir, chromium, url, newPassword] = process.argv;
const { chromium: browserType } = require(require.resolve("playwright-core", { paths: [playwrightDir] }));

(async () => {
  const browser = await browserType.launch({
    executablePath: chromium,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  try {
    const page = await browser.newPage();
    await page.goto(url, { waitUntil: "load" });
    if (newPassword) {
      await page.fill("#password", newPassword);
      await page.click("button[type=submit]");
    }
    const status = page.locator("#status[data-outcome]");
    await status.waitFor({ timeout: 20000 });
    console.log(
      JSON.stringify({
        outcome: await status.getAttribute("data-outcome"),
        status: await status.textContent(),
        address: page.url(),
      }),
    );
  } finally {
    await browser.close();
  }
})().catch((error) => {
  console.error(error);
  process.exit(1);
});
