#!/usr/bin/env node
// Saves a PNG of a running example for its README, with the system's headless Chromium:
//   node test/screenshot.mjs [url] [out.png]     (defaults: http://localhost:8080, screenshot.png)
import puppeteer from 'puppeteer-core';

const url = process.argv[2] ?? 'http://localhost:8080';
const out = process.argv[3] ?? 'screenshot.png';
const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM_BIN ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--hide-scrollbars'],
});
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 960, height: 440, deviceScaleFactor: 1 });
  await page.goto(url, { waitUntil: 'load' });
  await page.waitForSelector('[data-testid=shape-list] li');
  await page.waitForSelector('[data-testid=db-list] li');
  await new Promise((r) => setTimeout(r, 500));
  await page.screenshot({ path: out });
  console.log(`screenshot: ${out}`);
} finally {
  await browser.close();
}
