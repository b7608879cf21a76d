// ddd-audit trial player (a Streamlit v2 custom component): it runs one 2AFC trial on its own.
//
//   blank inter-trial interval -> fixation cross -> stimulus pair (-> noise mask after the
//   presentation limit) -> answer (ArrowLeft/ArrowRight, or a click) -> blank
//
// The header ("Trial 3 of 20"), the question and the images are drawn together, in one DOM
// change, and removed together at the answer, so no frame shows one trial's number with
// another trial's images. The next pair appears only after its images are decoded and the
// blank interval and the fixation have run. Each phase starts in a requestAnimationFrame
// callback: the frame's timestamp (performance.now()'s clock) is the phase's onset, and a phase
// ends at the first frame within half a frame of its set duration. The answer is sent with its
// response time (event time - stimulus onset) and the measured phase durations in ms.
//
// While a trial is on screen, the images of the trials that can follow it (data.preload: the next
// trial, or in an adaptive study the next trial after either answer) are decoded ahead, so the blank
// interval is not spent loading. The display's refresh interval (the median of the last 120 frame
// intervals) is sent with every answer as refresh_ms.
//
// For tests, <html> carries data-xp-phase (blank, fullscreen, fixation, stimulus, mask),
// data-xp-trial (the trial in the player), data-xp-ready (the trial whose images are shown) and
// data-xp-preloaded (how many shown images had been decoded ahead).
const REGISTRY = "__dddAuditTrialPlayer";
const MASK_BLOCK_PX = 4;

function typingInField(event) {
  const el = event.target;
  return el instanceof HTMLElement && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName));
}

function el(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "style") node.style.cssText = value;
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) node.appendChild(child);
  return node;
}

function noiseCanvas(size) {
  const canvas = el("canvas", { width: String(size), height: String(size), "data-xp-mask": "1" });
  canvas.style.cssText = `width:${size}px;height:${size}px;display:block;`;
  const ctx = canvas.getContext("2d");
  for (let y = 0; y < size; y += MASK_BLOCK_PX) {
    for (let x = 0; x < size; x += MASK_BLOCK_PX) {
      const g = Math.floor(Math.random() * 256);
      ctx.fillStyle = `rgb(${g},${g},${g})`;
      ctx.fillRect(x, y, MASK_BLOCK_PX, MASK_BLOCK_PX);
    }
  }
  return canvas;
}

function decoded(src) {
  const img = new Image();
  img.src = src;
  img.draggable = false;
  return (img.decode ? img.decode() : Promise.resolve()).then(() => img, () => img);
}

class Player {
  constructor(root) {
    this.root = root;
    this.stage = el("div", { class: "xp-stage" });
    root.appendChild(this.stage);
    this.frameMs = 1000 / 60;
    this.lastFrame = null;
    this.deltas = []; // the last frame intervals (ms), for the refresh interval
    this.cache = new Map(); // src -> Promise of a decoded <img>, for images preloaded ahead
    this.preloaded = 0;
    this.blankOnset = null; // when the blank after the last answer (or the mount) was drawn
    this.trial = null; // {data, key, images, phase, onsets, answered}
    this.setTrigger = () => {};
    this.raf = 0;
    this.onKey = (event) => this.key(event);
    window.addEventListener("keydown", this.onKey, true);
    this.tick = this.tick.bind(this);
    this.raf = requestAnimationFrame(this.tick);
    this.mark("blank");
  }

  mark(phase) {
    const ds = document.documentElement.dataset;
    ds.xpPhase = phase;
    if (phase === "stimulus") ds.xpReady = String(this.trial.data.trial_id);
  }

  load(data, setTrigger) {
    this.setTrigger = setTrigger;
    const key = `${data.trial_id}/${data.attempt || 0}`;
    if (this.trial && this.trial.key === key) return; // a rerun with the same trial
    this.root.style.setProperty("--xp-background", data.background || "#808080");
    this.root.style.setProperty("--xp-size", `${data.size}px`);
    const trial = { data, key, images: null, phase: "waiting", onsets: {}, answered: false };
    this.trial = trial;
    document.documentElement.dataset.xpTrial = String(data.trial_id);
    Promise.all([this.image(data.left), this.image(data.right)]).then(([left, right]) => {
      trial.images = { left, right };
      this.preload(data.preload);
    });
    if (this.stage.childElementCount) this.clear(); // e.g. an answer that was not stored
  }

  // An image decoded ahead is used once (an <img> can stand in one place only), else decoded now.
  image(src) {
    const ahead = this.cache.get(src);
    if (!ahead) return decoded(src);
    this.cache.delete(src);
    this.preloaded += 1;
    document.documentElement.dataset.xpPreloaded = String(this.preloaded);
    return ahead;
  }

  preload(sources) {
    for (const src of sources || []) {
      if (typeof src === "string" && !this.cache.has(src)) this.cache.set(src, decoded(src));
    }
    while (this.cache.size > 16) this.cache.delete(this.cache.keys().next().value);
  }

  refreshMs() {
    if (!this.deltas.length) return null;
    const sorted = [...this.deltas].sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)];
  }

  clear() {
    this.stage.replaceChildren();
    this.mark("blank");
  }

  // One frame: move the trial on when its phase has lasted long enough.
  tick(now) {
    if (this.lastFrame !== null) {
      const delta = now - this.lastFrame;
      if (delta > 4 && delta < 100) this.frameMs = 0.9 * this.frameMs + 0.1 * delta;
      if (delta > 2 && delta < 100) {
        this.deltas.push(delta);
        if (this.deltas.length > 120) this.deltas.shift();
      }
    }
    this.lastFrame = now;
    if (this.blankOnset === null) this.blankOnset = now;
    const t = this.trial;
    const due = (since, ms) => now - since >= ms - this.frameMs / 2;
    if (t && !t.answered) {
      const seq = t.data.sequence || {};
      // Full screen is asked for before a trial whenever the page is not in it (also after the
      // observer left it with Esc), unless the browser refused it once.
      const needsFullscreen = t.data.fullscreen && !document.fullscreenElement && !this.fullscreenRefused;
      if (t.phase === "waiting" && t.images && needsFullscreen) {
        if (!this.askingFullscreen) this.askFullscreen();
      } else if (t.phase === "waiting" && t.images) {
        if (due(this.blankOnset, seq.iti_ms || 0)) this.start(t, seq, now);
      } else if (t.phase === "fixation" && due(t.onsets.fixation, seq.fixation_ms)) {
        this.showStimulus(t, now);
      } else if (t.phase === "stimulus" && seq.stimulus_ms && due(t.onsets.stimulus, seq.stimulus_ms)) {
        this.endStimulus(t, seq, now);
      }
    } else if (t && t.answered && t.blankPending) {
      t.blankPending = false;
      this.blankOnset = now;
    }
    this.raf = requestAnimationFrame(this.tick);
  }

  askFullscreen() {
    this.askingFullscreen = true;
    const button = el("button", { class: "xp-button", type: "button", "data-xp-fullscreen": "1", text: "Continue in full screen" });
    button.onclick = () => {
      const done = (refused) => () => {
        this.fullscreenRefused = this.fullscreenRefused || refused;
        this.askingFullscreen = false;
        this.clear();
        this.blankOnset = null; // the blank interval starts again from here
      };
      const root = document.documentElement;
      if (root.requestFullscreen) root.requestFullscreen().then(done(false), done(true));
      else done(true)();
    };
    this.stage.replaceChildren(el("div", { class: "xp-centre" }, [button]));
    this.mark("fullscreen");
  }

  start(t, seq, now) {
    t.onsets.iti = this.blankOnset;
    if (seq.fixation_ms > 0) {
      t.phase = "fixation";
      t.onsets.fixation = now;
      this.stage.replaceChildren(el("div", { class: "xp-centre" }, [el("div", { class: "xp-fixation", text: "+" })]));
      this.mark("fixation");
    } else {
      t.onsets.fixation = now;
      this.showStimulus(t, now);
    }
  }

  showStimulus(t, now) {
    const d = t.data;
    const size = d.size;
    const side = (name) => {
      const img = t.images[name];
      img.alt = `${name} image`;
      img.width = size;
      img.height = size;
      img.dataset.xpTrial = String(d.trial_id);
      img.dataset.xpSide = name;
      img.style.cssText = `width:${size}px;height:${size}px;max-width:none;display:block;user-select:none;`;
      const frame = el("div", { class: "xp-image", style: `width:${size}px;height:${size}px;` }, [img]);
      frame.onclick = () => this.answer(name, "click", performance.now());
      const button = el("button", { class: "xp-button", type: "button", "data-xp-choice": name, text: name === "left" ? "Left" : "Right" });
      button.onclick = (event) => this.answer(name, "click", event.timeStamp);
      return el("div", { class: "xp-side" }, [frame, button]);
    };
    const bar = el("div", { class: "xp-bar" }, [el("div", { style: `width:${(100 * d.fraction).toFixed(1)}%` })]);
    this.stage.replaceChildren(
      el("div", { class: "xp-header", "data-xp-header": String(d.trial_id), text: d.header }),
      bar,
      el("div", { class: "xp-question", text: d.question }),
      el("div", { class: "xp-pair" }, [side("left"), side("right")]),
      el("div", { class: "xp-hint", text: "Answer with the \u2190 and \u2192 arrow keys, or click an image." }),
    );
    t.phase = "stimulus";
    t.onsets.stimulus = now;
    this.mark("stimulus");
  }

  endStimulus(t, seq, now) {
    t.onsets.mask = now;
    t.phase = "mask";
    for (const name of ["left", "right"]) {
      const frame = this.stage.querySelector(`.xp-side:${name === "left" ? "first" : "last"}-child .xp-image`);
      if (frame) frame.replaceChildren(seq.mask ? noiseCanvas(t.data.size) : el("div"));
    }
    this.mark("mask");
  }

  key(event) {
    if (event.altKey || event.ctrlKey || event.metaKey || typingInField(event)) return;
    const choice = event.key === "ArrowLeft" ? "left" : event.key === "ArrowRight" ? "right" : null;
    if (choice === null) return;
    event.preventDefault();
    event.stopImmediatePropagation();
    if (!event.repeat) this.answer(choice, "key", event.timeStamp);
  }

  answer(choice, via, at) {
    const t = this.trial;
    if (!t || t.answered || (t.phase !== "stimulus" && t.phase !== "mask")) return;
    t.answered = true;
    const now = performance.now();
    const answeredAt = at >= t.onsets.stimulus && at <= now ? at : now;
    const o = t.onsets;
    const phases = { iti: o.fixation - o.iti };
    if ((t.data.sequence || {}).fixation_ms > 0) phases.fixation = o.stimulus - o.fixation;
    phases.stimulus = (o.mask !== undefined ? o.mask : answeredAt) - o.stimulus;
    if (o.mask !== undefined) phases.mask = answeredAt - o.mask;
    this.stage.replaceChildren(); // the blank interval starts on the next frame
    this.mark("blank");
    t.blankPending = true;
    document.documentElement.dataset.xpAnswered = String(t.data.trial_id);
    this.setTrigger("response", {
      trial_id: t.data.trial_id,
      choice,
      rt_ms: answeredAt - o.stimulus,
      via,
      phases,
      refresh_ms: this.refreshMs(),
    });
  }

  dispose() {
    window.removeEventListener("keydown", this.onKey, true);
    cancelAnimationFrame(this.raf);
  }
}

export default function (component) {
  const { data, setTriggerValue, parentElement } = component;
  // Streamlit calls this again with new data for the same mount: the player in the global slot
  // keeps running (its blank interval continues across trials) and takes the new trial.
  let player = window[REGISTRY];
  if (!player || player.root !== parentElement || !parentElement.isConnected) {
    if (player) player.dispose();
    player = new Player(parentElement);
    window[REGISTRY] = player;
  }
  if (data && data.trial_id !== undefined) player.load(data, setTriggerValue);
  return () => {
    if (!parentElement.isConnected && window[REGISTRY] === player) {
      player.dispose();
      delete window[REGISTRY];
    }
  };
}
