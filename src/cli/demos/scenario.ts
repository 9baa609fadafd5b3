/** What `switchyard demo <scenario>` passes to a scenario's run(). */
export interface DemoOptions {
  /** End with one JSON summary line instead of a readable table. */
  json: boolean;
  /** Arguments after the scenario name. */
  args: string[];
}
