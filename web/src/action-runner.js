// One action at a time, for both pages: a second click while a token is being fetched, revoked or
// deleted does nothing, instead of racing the first. The buttons are marked aria-disabled rather
// than disabled while busy, so keyboard focus stays where the person left it.

/**
 * @param {object} page what the page shows: `clearError`, `showStatus(text)`, `showError(error)`
 * @param {object} parts `region`: the element marked aria-busy while an action runs;
 *   `buttons`: the buttons marked aria-disabled meanwhile
 * @returns {{ run: (working: string, action: () => Promise<void>) => Promise<void>, isBusy: () => boolean }}
 */
export function createActionRunner(page, { region, buttons }) {
  let busy = false;

  function mark(running) {
    const marks = [[region, "aria-busy"], ...buttons.map((button) => [button, "aria-disabled"])];
    for (const [element, attribute] of marks) {
      if (running) {
        element.setAttribute(attribute, "true");
      } else {
        element.removeAttribute(attribute);
      }
    }
  }

  /** Runs `action` unless one is running; says `working` meanwhile and shows any error it throws
   * (unless the error was already put in front of the person). */
  async function run(working, action) {
    if (busy) {
      return;
    }
    busy = true;
    mark(true);
    page.clearError();
    page.showStatus(working);
    try {
      await action();
    } catch (error) {
      if (!error?.shownToPerson) {
        page.showError(error);
      }
    } finally {
      busy = false;
      mark(false);
    }
  }

  return { run, isBusy: () => busy };
}
