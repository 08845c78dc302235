// Child-process entry for the mux throughput bench's split mode (bench/micro/mux/mux-throughput.ts forks the
// compiled dist/bench/micro/mux/sink-process.js). It runs a ThroughputSink and talks to the parent over the IPC
// channel:
//   parent → child  {type:'expect', plan}
//   child → parent  {type:'listening', port} | {type:'ready', id} | {type:'done', done}
// It exits when the parent disconnects. Not meant to be run by hand.
import { ThroughputSink, type SinkPlan } from './throughput-sink.js';

type ParentMessage = { type: 'expect'; plan: SinkPlan };

const send = process.send?.bind(process);
if (send === undefined) {
  process.stderr.write('sink-process.js is started by the mux bench (npm run bench -- mux --split), not by hand\n');
  process.exitCode = 2;
} else {
  const sink = new ThroughputSink((done) => send({ type: 'done', done }));
  const port = await sink.listen();
  process.on('message', (m: ParentMessage) => {
    if (m.type === 'expect') {
      sink.expect(m.plan);
      send({ type: 'ready', id: m.plan.id });
    }
  });
  process.once('disconnect', () => void sink.close());
  send({ type: 'listening', port });
}
