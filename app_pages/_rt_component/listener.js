// ddd-audit response listener (a Streamlit v2 custom component with no UI of its own).
// It waits until both stimulus images <img data-xp-trial="ID"> of the trial are loaded, takes
// performance.now() on the next animation frame (display time), then reports the first
// ArrowLeft/ArrowRight key or click on a choice button with its response time in ms
// (event time minus display time).
// Until then, and after the first answer, keys and clicks on the choice buttons are dropped.
const REGISTRY = "__dddAuditRtListener";
const DEGRADE_AFTER_MS = 5000; // images never seen as loaded: let the plain buttons work (server RT)

function typingInField(event) {
  const el = event.target;
  return el instanceof HTMLElement && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName));
}

function imagesReady(trialId) {
  const imgs = Array.from(document.querySelectorAll(`img[data-xp-trial="${trialId}"]`));
  return imgs.length >= 2 && imgs.every((img) => img.complete && img.naturalWidth > 0);
}

function listen(data, setTriggerValue, state) {
  const root = document.documentElement;
  const trialId = String(data.trial_id);
  const buttons = data.buttons || {};
  let raf = 0;
  let degradeTimer = 0;

  const respond = (choice, via, event) => {
    if (state.responded) return;
    state.responded = true;
    root.dataset.xpAnswered = trialId;
    // The event's own time (same clock as performance.now()) is when the key went down or the
    // button was clicked, not when this handler got to run.
    const at = event.timeStamp >= state.shownAt ? event.timeStamp : performance.now();
    const rtMs = at - state.shownAt;
    setTriggerValue("response", { trial_id: data.trial_id, choice, rt_ms: rtMs, via });
  };

  // Capture phase on window runs before Streamlit's own handlers (its button shortcuts and
  // clicks), so an answer is sent once, with its browser RT.
  const onKey = (event) => {
    if (state.degraded || event.altKey || event.ctrlKey || event.metaKey || typingInField(event)) return;
    const choice = event.key === "ArrowLeft" ? "left" : event.key === "ArrowRight" ? "right" : null;
    if (choice === null) return;
    event.preventDefault();
    event.stopImmediatePropagation();
    if (!event.repeat && state.shownAt !== null) respond(choice, "key", event);
  };

  const onClick = (event) => {
    if (state.degraded || !(event.target instanceof Element)) return;
    const choice = Object.keys(buttons).find((side) => event.target.closest(`.st-key-${buttons[side]}`));
    if (choice === undefined) return;
    event.preventDefault();
    event.stopImmediatePropagation();
    if (state.shownAt !== null) respond(choice, "click", event); // else: e.g. the 2nd half of a double click
  };

  const poll = () => {
    if (imagesReady(trialId)) {
      raf = requestAnimationFrame(() => {
        state.shownAt = performance.now();
        clearTimeout(degradeTimer);
        root.dataset.xpReady = trialId;
      });
    } else {
      raf = requestAnimationFrame(poll);
    }
  };

  window.addEventListener("keydown", onKey, true);
  window.addEventListener("click", onClick, true);
  const armDegrade = () => {
    degradeTimer = setTimeout(() => {
      if (state.shownAt !== null) return;
      if (document.hidden) armDegrade(); // a background tab paints nothing: wait for it
      else state.degraded = true;
    }, DEGRADE_AFTER_MS);
  };
  if (state.shownAt === null) {
    armDegrade();
    poll();
  } else {
    root.dataset.xpReady = trialId;
  }
  return () => {
    window.removeEventListener("keydown", onKey, true);
    window.removeEventListener("click", onClick, true);
    cancelAnimationFrame(raf);
    clearTimeout(degradeTimer);
  };
}

export default function (component) {
  const { data, setTriggerValue } = component;
  // Streamlit may call this again for the same mount (new data) without running the cleanup of
  // the first call, so the page's one listener lives in a global slot and is replaced here.
  // A rerun that shows the same trial keeps its display time.
  const previous = window[REGISTRY];
  const trialKey = data && data.trial_id !== undefined ? String(data.trial_id) : null;
  const keep = previous && trialKey !== null && previous.trialKey === trialKey;
  const state = keep ? previous.state : { shownAt: null, responded: false, degraded: false, attempt: 0 };
  const attempt = (data && data.attempt) || 0;
  if (state.attempt !== attempt) {
    state.attempt = attempt; // the server did not store the last answer: answer again
    state.responded = false;
  }
  if (previous) previous.dispose();
  const stop = trialKey === null ? () => {} : listen(data, setTriggerValue, state);
  const entry = {
    trialKey,
    state,
    dispose: () => {
      stop();
      if (window[REGISTRY] === entry) delete window[REGISTRY];
    },
  };
  window[REGISTRY] = entry;
  return entry.dispose;
}
