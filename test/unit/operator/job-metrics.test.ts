/** Per-job gauges of the operator: one phase series at 1 per job, numbers from status, gone on delete. */
import test from 'ava';
import { METRIC, OperatorMetrics } from '../../../operator/src/metrics/index.js';

test('job metrics - phase, step, loss and restarts follow the status; a deleted job leaves no series', async (t) => {
  const m = new OperatorMetrics({ defaultMetrics: false });
  m.observeJob('ns', 'a', 'Running', { step: 5, totalSteps: 20, loss: 1.5, attempt: 1, restarts: 1 });
  m.observeJob('ns', 'b', 'Suspended', {});
  let text = await m.registry.metrics();
  t.regex(text, new RegExp(`^${METRIC.jobPhase}\\{namespace="ns",name="a",phase="Running"\\} 1$`, 'm'));
  t.regex(text, new RegExp(`^${METRIC.jobPhase}\\{namespace="ns",name="a",phase="Failed"\\} 0$`, 'm'));
  t.regex(text, new RegExp(`^${METRIC.jobStep}\\{namespace="ns",name="a"\\} 5$`, 'm'));
  t.regex(text, new RegExp(`^${METRIC.jobLoss}\\{namespace="ns",name="a"\\} 1.5$`, 'm'));
  t.regex(text, new RegExp(`^${METRIC.jobRestarts}\\{namespace="ns",name="a"\\} 1$`, 'm'));
  t.notRegex(text, new RegExp(`^${METRIC.jobStep}\\{namespace="ns",name="b"\\}`, 'm'));
  m.observeJob('ns', 'a', 'Succeeded', { step: 20, totalSteps: 20, loss: NaN });
  text = await m.registry.metrics();
  t.regex(text, new RegExp(`^${METRIC.jobPhase}\\{namespace="ns",name="a",phase="Succeeded"\\} 1$`, 'm'));
  t.regex(text, new RegExp(`^${METRIC.jobPhase}\\{namespace="ns",name="a",phase="Running"\\} 0$`, 'm'));
  t.notRegex(text, new RegExp(`^${METRIC.jobLoss}\\{namespace="ns",name="a"\\}`, 'm'), 'NaN loss is not exported');
  m.forgetJob('ns', 'a');
  text = await m.registry.metrics();
  t.notRegex(text, /name="a"/);
  t.regex(text, /name="b"/);
});
