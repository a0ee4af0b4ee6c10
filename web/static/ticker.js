// livegate studio: a steady clock for the screen compositor. A worker's timer keeps ticking
// at full rate while the studio tab is in the background (which is where it is while the
// streamer shows another window), when the page's own timers and animation frames would
// slow down or stop. Messages: {fps} to start or change the rate, {stop: true} to stop.
let timer = 0;
self.onmessage = (ev) => {
  clearInterval(timer);
  timer = 0;
  const d = ev.data || {};
  if (d.stop) return;
  const fps = d.fps > 0 ? d.fps : 30;
  timer = setInterval(() => self.postMessage(0), 1000 / fps);
};
