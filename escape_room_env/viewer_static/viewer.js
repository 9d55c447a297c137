// The escape-room viewer page: served by `escape-room view` (it asks the server's routes) or
// written by `escape-room view --html` (window.ER_EMBEDDED holds every step it shows).
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const embedded = window.ER_EMBEDDED;
  const SPEEDS = [0.25, 0.5, 1, 2, 4, 8, 16];
  const STEPS_PER_SECOND = 10; // at speed 1x
  const BIG_WORLD_COUNT = 1024; // more worlds than this: a number box instead of a list
  const FIRST_PERSON_SCALE = 2;
  const ENDS = { "-1": "", 0: "time limit", 1: "escaped" };

  const state = {
    meta: null,
    world: 0,
    step: 0,
    maxStep: 0,
    playing: false,
    speed: 2, // index into SPEEDS
    token: 0, // the latest request; older answers are dropped
    wanted: { world: 0, step: 0 }, // what the latest request asks for: keys pressed quickly add up
    loop: 0, // the running playback loop
  };

  // -- where the numbers and frames come from

  async function getJson(url) {
    const response = await fetch(url, { cache: "no-store" });
    let body = null;
    try {
      body = await response.json();
    } catch (error) {
      body = null;
    }
    if (!response.ok) {
      const error = new Error(body && body.error ? body.error : `${url}: HTTP ${response.status}`);
      error.diverged = body ? body.diverged : null; // a step after the divergence: where it was
      throw error;
    }
    return body;
  }

  const source = embedded
    ? {
        meta: async () => embedded.meta,
        step: async (world, step) => {
          const steps = embedded.worlds[String(world)];
          if (!steps) {
            const held = Object.keys(embedded.worlds).join(", ");
            throw new Error(`world ${world} is not in this file (it holds world ${held})`);
          }
          if (!(step >= 0 && step < steps.length)) {
            throw new Error(`step ${step} is not in this file (it holds steps 0 to ${steps.length - 1})`);
          }
          return steps[step];
        },
      }
    : {
        meta: () => getJson("api/meta"),
        step: (world, step) => getJson(`api/step?world=${world}&step=${step}`),
      };

  function loadImage(src) {
    return new Promise((resolve, reject) => {
      const image = new Image();
      image.onload = () => resolve(image);
      image.onerror = () => reject(new Error("the frame could not be loaded (is the viewer still running?)"));
      image.src = src;
    });
  }

  // -- showing one step

  function showError(message) {
    const box = $("error");
    box.textContent = message;
    box.hidden = false;
  }

  function hideError() {
    $("error").hidden = true;
  }

  function draw(canvas, image, scale) {
    const width = image.naturalWidth * scale;
    const height = image.naturalHeight * scale;
    if (canvas.width !== width || canvas.height !== height) {
      canvas.width = width;
      canvas.height = height;
    }
    const context = canvas.getContext("2d");
    context.imageSmoothingEnabled = false;
    context.drawImage(image, 0, 0, width, height);
  }

  function cell(row, field, text, title) {
    const td = document.createElement("td");
    td.dataset.field = field;
    td.textContent = text;
    if (title) td.title = title;
    row.appendChild(td);
  }

  function renderNumbers(data) {
    $("step").textContent = String(data.step);
    $("world-shown").textContent = String(data.world);
    let episode = `episode ${data.episode}, ${data.steps_left} steps left`;
    if (data.level !== null) episode += `, level ${data.level}`;
    $("episode").textContent = episode;

    const body = $("agents").tBodies[0];
    body.replaceChildren();
    data.agents.forEach((agent, i) => {
      const row = document.createElement("tr");
      row.dataset.agent = String(i);
      cell(row, "agent", String(i));
      cell(row, "x", agent.position[0].toFixed(3));
      cell(row, "y", agent.position[1].toFixed(3));
      cell(row, "yaw", ((agent.yaw * 180) / Math.PI).toFixed(1));
      cell(row, "progress", agent.progress.toFixed(3));
      const action = agent.action === null ? "–" : agent.action.join(" ");
      cell(row, "action", action, "move_amount move_angle rotate");
      cell(row, "reward", agent.reward.toFixed(5));
      cell(row, "done", String(agent.done));
      cell(row, "end", (ENDS[String(agent.termination_reason)] ?? "") + (agent.escaped ? " (out)" : ""));
      body.appendChild(row);
    });

    const doors = $("doors");
    doors.replaceChildren();
    data.doors.forEach((door, k) => {
      const span = document.createElement("span");
      span.className = door.open ? "open" : "closed";
      span.dataset.door = String(k);
      span.textContent = `${k}: ${door.open ? "open" : "closed"}`;
      span.title = `door ${k}, group ${door.group}`;
      doors.append(span, k + 1 < data.doors.length ? " · " : "");
    });
    if (!data.doors.length) doors.textContent = "none";

    const buttons = $("buttons");
    buttons.replaceChildren();
    data.buttons.forEach((button, k) => {
      const span = document.createElement("span");
      span.dataset.button = String(k);
      span.textContent = `${k}: ${button.pressed ? "pressed" : "up"}`;
      span.title = `button ${k}, opens group ${button.group}`;
      buttons.append(span, k + 1 < data.buttons.length ? " · " : "");
    });
    if (!data.buttons.length) buttons.textContent = "none";

    const c = data.checkpoint;
    const box = $("checkpoint");
    box.dataset.status = c.status;
    box.className = c.status === "diverged" ? "diverged" : "";
    if (c.status === "diverged") {
      box.textContent = `diverged: the checkpoint at step ${c.last} does not match the recording`;
    } else {
      let text = `verified: ${c.verified} of ${c.total} checkpoints up to this step`;
      if (c.here) text += " (one at this step)";
      else if (c.last !== null) text += ` (last at step ${c.last})`;
      if (c.next !== null) text += `; next at step ${c.next}`;
      box.textContent = text;
    }
  }

  function noteDivergence(diverged) {
    if (!diverged) return;
    state.maxStep = Math.min(state.maxStep, diverged.step);
    const box = $("diverged");
    box.textContent =
      `The replay diverges from the recording at step ${diverged.step}: steps up to it are shown, ` +
      `later ones are not the recording's. ${diverged.message}`;
    box.hidden = false;
  }

  async function show(world, step) {
    const token = ++state.token;
    state.wanted = { world, step };
    let data;
    let top;
    let firstPerson = null;
    try {
      data = await source.step(world, step);
      top = await loadImage(data.frame);
      if (data.first_person) firstPerson = await loadImage(data.first_person);
    } catch (error) {
      if (token !== state.token) return false;
      if (error.diverged && step > error.diverged.step) {
        noteDivergence(error.diverged); // found while seeking there: show the diverged step instead
        return show(world, error.diverged.step);
      }
      showError(error.message);
      state.wanted = { world: state.world, step: state.step };
      pause();
      return false;
    }
    if (token !== state.token) return false;
    hideError();
    draw($("topdown"), top, 1);
    if (firstPerson) {
      $("fp-figure").hidden = false;
      draw($("first-person"), firstPerson, FIRST_PERSON_SCALE);
    }
    renderNumbers(data);
    state.world = data.world;
    state.step = data.step;
    noteDivergence(data.diverged);
    syncControls();
    document.body.dataset.shown = `${data.world}:${data.step}`;
    return true;
  }

  // -- controls

  function clampStep(step) {
    return Math.max(0, Math.min(state.maxStep, step));
  }

  function goTo(step) {
    return show(state.wanted.world, clampStep(step));
  }

  function goBy(delta) {
    return goTo(state.wanted.step + delta);
  }

  function worldList() {
    const meta = state.meta;
    if (meta.worlds) return meta.worlds;
    if (meta.num_worlds > BIG_WORLD_COUNT) return null;
    return Array.from({ length: meta.num_worlds }, (_, w) => w);
  }

  function buildWorldControl() {
    const list = worldList();
    let control;
    if (list) {
      control = document.createElement("select");
      for (const w of list) {
        const option = document.createElement("option");
        option.value = String(w);
        option.textContent = String(w);
        control.appendChild(option);
      }
    } else {
      control = document.createElement("input");
      control.type = "number";
      control.min = "0";
      control.max = String(state.meta.num_worlds - 1);
    }
    control.id = "world";
    control.title = "world ([ and ])";
    control.addEventListener("change", () => {
      control.blur(); // the keys are the page's shortcuts again
      const world = Number.parseInt(control.value, 10);
      if (Number.isInteger(world) && world >= 0 && world < state.meta.num_worlds) {
        show(world, state.wanted.step);
      } else {
        showError(`world must be 0 to ${state.meta.num_worlds - 1}`);
      }
    });
    $("world-box").replaceChildren(control);
  }

  function otherWorld(delta) {
    const list = worldList();
    const { world, step } = state.wanted;
    if (list) {
      const i = list.indexOf(world) + delta;
      if (i >= 0 && i < list.length) show(list[i], step);
    } else if (world + delta >= 0 && world + delta < state.meta.num_worlds) {
      show(world + delta, step);
    }
  }

  function syncControls() {
    const timeline = $("timeline");
    timeline.max = String(state.maxStep);
    timeline.value = String(state.step);
    $("jump").max = String(state.maxStep);
    if (document.activeElement !== $("jump")) $("jump").value = String(state.step);
    $("last-step").textContent = String(state.maxStep);
    $("world").value = String(state.world);
    $("play").textContent = state.playing ? "Pause" : "Play";
    $("speed").value = String(state.speed);
  }

  function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  async function play() {
    if (state.playing) return;
    if (state.step >= state.maxStep) await goTo(0);
    state.playing = true;
    syncControls();
    const loop = ++state.loop;
    while (state.playing && loop === state.loop) {
      if (state.step >= state.maxStep) {
        pause();
        break;
      }
      const started = performance.now();
      await show(state.world, state.step + 1);
      const interval = 1000 / (STEPS_PER_SECOND * SPEEDS[state.speed]);
      await sleep(Math.max(0, interval - (performance.now() - started)));
    }
  }

  function pause() {
    state.playing = false;
    state.loop++;
    syncControls();
  }

  function togglePlay() {
    if (state.playing) pause();
    else play();
  }

  function changeSpeed(delta) {
    state.speed = Math.max(0, Math.min(SPEEDS.length - 1, state.speed + delta));
    syncControls();
  }

  function jump() {
    const input = $("jump");
    const step = Number.parseInt(input.value, 10);
    if (!Number.isInteger(step) || step < 0 || step > state.maxStep) {
      showError(`step must be 0 to ${state.maxStep}`);
      return;
    }
    pause();
    input.blur();
    show(state.wanted.world, step);
  }

  function button(id, action) {
    $(id).addEventListener("click", (event) => {
      event.currentTarget.blur(); // so that Space stays the page's shortcut
      if (state.meta) action();
    });
  }

  function onKey(event) {
    const target = event.target;
    const tag = target && target.tagName;
    if (!state.meta || event.ctrlKey || event.metaKey || event.altKey) return;
    if (tag === "SELECT" || (tag === "INPUT" && target.type !== "range")) {
      if (event.key === "Escape") target.blur();
      return; // typing a number, or choosing in a list
    }
    if (tag === "BUTTON" && (event.key === " " || event.key === "Enter")) return;
    const onRange = tag === "INPUT"; // the timeline moves itself with arrows, Home and End
    const by = event.shiftKey ? 10 : 1;
    switch (event.key) {
      case " ":
        togglePlay();
        break;
      case "ArrowRight":
        if (onRange) return;
        pause();
        goBy(by);
        break;
      case "ArrowLeft":
        if (onRange) return;
        pause();
        goBy(-by);
        break;
      case "Home":
        if (onRange) return;
        pause();
        goTo(0);
        break;
      case "End":
        if (onRange) return;
        pause();
        goTo(state.maxStep);
        break;
      case "[":
        otherWorld(-1);
        break;
      case "]":
        otherWorld(1);
        break;
      case "-":
      case "_":
        changeSpeed(-1);
        break;
      case "+":
      case "=":
        changeSpeed(1);
        break;
      case "g":
      case "G":
        $("jump").focus();
        $("jump").select();
        break;
      default:
        return;
    }
    event.preventDefault();
  }

  function describe(meta) {
    $("file").textContent = meta.file;
    const level = meta.levels.length ? `levels ${meta.levels.join(", ")}` : `rooms ${meta.rooms.join(", ")}`;
    let text =
      `${meta.num_worlds} world(s) of ${meta.num_agents} agent(s), ${meta.num_steps} steps` +
      `${meta.complete ? "" : " (truncated file)"}, ${meta.autoreset_mode} resets, episodes of ` +
      `${meta.episode_len} steps, ${level}, seed ${meta.seed}, a checkpoint every ${meta.checksum_interval} steps`;
    if (meta.worlds) text += `; this file holds world(s) ${meta.worlds.join(", ")}, steps 0 to ${meta.max_step}`;
    $("summary").textContent = text;
    if (meta.notes.length) {
      $("notes").textContent =
        `This file was cut short; the ${meta.num_steps} steps it holds are shown. ${meta.notes.join(" ")}`;
      $("notes").hidden = false;
    }
  }

  async function init() {
    const speed = $("speed");
    SPEEDS.forEach((factor, i) => {
      const option = document.createElement("option");
      option.value = String(i);
      option.textContent = `${factor}×`;
      speed.appendChild(option);
    });
    speed.addEventListener("change", () => {
      speed.blur();
      state.speed = Number.parseInt(speed.value, 10);
    });
    button("first", () => {
      pause();
      goTo(0);
    });
    button("back", () => {
      pause();
      goBy(-1);
    });
    button("play", togglePlay);
    button("forward", () => {
      pause();
      goBy(1);
    });
    button("last", () => {
      pause();
      goTo(state.maxStep);
    });
    button("go", jump);
    $("jump").addEventListener("keydown", (event) => {
      if (event.key === "Enter") jump();
    });
    $("timeline").addEventListener("input", () => {
      if (!state.meta) return;
      pause();
      goTo(Number.parseInt($("timeline").value, 10));
    });
    document.addEventListener("keydown", onKey);

    let meta;
    try {
      meta = await source.meta();
    } catch (error) {
      showError(error.message);
      return;
    }
    state.meta = meta;
    state.maxStep = meta.max_step;
    describe(meta);
    buildWorldControl();
    noteDivergence(meta.diverged);
    const query = new URLSearchParams(window.location.search);
    const world = query.has("world") ? Number.parseInt(query.get("world"), 10) : meta.world;
    const step = query.has("step") ? Number.parseInt(query.get("step"), 10) : 0;
    await show(Number.isInteger(world) ? world : meta.world, clampStep(Number.isInteger(step) ? step : 0));
    document.body.dataset.ready = "1";
  }

  init();
})();
