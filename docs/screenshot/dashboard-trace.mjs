// Screenshots of the Aspire dashboard for the README, taken with headless Debian Chromium.
//   cd docs/screenshot && npm install --no-save playwright-core@1 && \
//   node dashboard-trace.mjs "<dashboard login URL from ./run.sh>" <trace id> ../images
// The trace id is one you chose yourself: send `traceparent: 00-<trace id>-<any 16 hex>-01` with the request.
import { chromium } from 'playwright-core';

const [loginUrl, traceId, outDir = '.'] = process.argv.slice(2);
if (!loginUrl || !traceId) {
  console.error('usage: node dashboard-trace.mjs <login URL> <trace id> [output dir]');
  process.exit(2);
}
const base = new URL(loginUrl).origin;
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: ['--no-sandbox'] });
try {
  const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
  await page.goto(loginUrl); // the token in the URL logs the browser in
  await page.waitForLoadState('networkidle');

  const shots = [
    [`${base}/traces/detail/${traceId}`, 'dashboard-trace.png', 'agent.task'],
    [`${base}/`, 'dashboard-resources.png', 'worker'],
    [`${base}/traces`, 'dashboard-traces.png', 'POST /agent/execute'],
    [`${base}/metrics/resource/api?meter=AgentPlatform&instrument=agent_requests_total`, 'dashboard-metrics.png', 'agent_task_queue_depth'],
  ];
  for (const [url, file, text] of shots) {
    await page.goto(url);
    await page.getByText(text).first().waitFor({ timeout: 30000 });
    await page.waitForTimeout(1500); // let the grid finish laying out
    await page.screenshot({ path: `${outDir}/${file}` });
    console.log(`${outDir}/${file}`);
  }
} finally {
  await browser.close();
}
