// Progress of a long bench run on stderr: a bar redrawn in place while stderr is a terminal, plain lines otherwise
// (CI logs, pipes). Log lines go through it so they never collide with the bar. Not on the hot path (a 4 Hz timer).

const WIDTH = 24;
const REDRAW_MS = 250;

export class Progress {
  private readonly tty: boolean;
  private done = 0;
  private label = '';
  private stepStart = 0;
  private stepSeconds = 0;
  private timer: NodeJS.Timeout | null = null;
  private drawn = false;

  /**
   * @param totalSteps how many steps the run has (the bar's 100 %)
   * @param write where lines go (stderr)
   */
  constructor(
    private readonly totalSteps: number,
    private readonly write: (text: string) => void,
    tty: boolean,
  ) {
    this.tty = tty;
  }

  /** Start the next step; `seconds` is its expected length (0 = unknown), shown as a countdown on a terminal. */
  step(label: string, seconds: number): void {
    this.label = label;
    this.stepStart = Date.now();
    this.stepSeconds = seconds;
    if (!this.tty) {
      this.write(`[${this.done + 1}/${this.totalSteps}] ${label}\n`);
      return;
    }
    this.draw();
    if (this.timer === null) {
      this.timer = setInterval(() => this.draw(), REDRAW_MS);
      this.timer.unref();
    }
  }

  /** The current step is over. */
  stepDone(): void {
    this.done = Math.min(this.totalSteps, this.done + 1);
    if (this.tty) this.draw();
  }

  /** A log line: printed above the bar. */
  log(line: string): void {
    this.clear();
    this.write(`${line}\n`);
    if (this.tty && this.timer !== null) this.draw();
  }

  /** Remove the bar and stop redrawing. */
  finish(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.clear();
  }

  private clear(): void {
    if (this.tty && this.drawn) this.write('\r\x1b[2K');
    this.drawn = false;
  }

  private draw(): void {
    const frac = this.totalSteps === 0 ? 1 : this.done / this.totalSteps;
    const filled = Math.round(frac * WIDTH);
    const elapsed = (Date.now() - this.stepStart) / 1000;
    const clock = this.stepSeconds > 0 ? ` ${elapsed.toFixed(0)}/${this.stepSeconds.toFixed(0)} s` : ` ${elapsed.toFixed(0)} s`;
    const text = `[${'#'.repeat(filled)}${'-'.repeat(WIDTH - filled)}] ${this.done}/${this.totalSteps} ${this.label}${clock}`;
    this.write(`\r\x1b[2K${text.slice(0, (process.stderr.columns ?? 120) - 1)}`);
    this.drawn = true;
  }
}
