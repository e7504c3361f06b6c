// Scanner feedback and the phone camera. A handheld scanner types the code and presses Enter
// (a plain form submit); this file only adds a sound for the result and a camera button. The
// camera uses the browser's BarcodeDetector where there is one, else the vendored ZXing decoder
// (loaded from /static only when the button is used). Typing the code always works.
(function () {
  "use strict";

  // Tones made on the spot (no audio files): a bright rising pair when the parcel was found,
  // two flat mid beeps for "found, but nothing to receive", one long low buzz for "stop".
  const TONES = {
    ok: [[880, 0, 0.09], [1320, 0.1, 0.12]],
    warn: [[440, 0, 0.12], [440, 0.2, 0.12]],
    bad: [[196, 0, 0.4]],
  };

  function beep(kind) {
    const notes = TONES[kind];
    const Context = window.AudioContext || window.webkitAudioContext;
    if (!notes || !Context) return;
    try {
      const ctx = new Context();
      if (ctx.state === "suspended" && ctx.resume) ctx.resume().catch(function () {});
      notes.forEach(function (note) {
        const osc = ctx.createOscillator();
        const gain = ctx.createGain();
        osc.type = kind === "bad" ? "square" : "sine";
        osc.frequency.value = note[0];
        gain.gain.value = 0.2;
        osc.connect(gain);
        gain.connect(ctx.destination);
        osc.start(ctx.currentTime + note[1]);
        osc.stop(ctx.currentTime + note[1] + note[2]);
      });
      setTimeout(function () { ctx.close().catch(function () {}); }, 1000);
    } catch (e) { /* no sound available */ }
  }

  const toned = document.querySelector("[data-scan-tone]");
  if (toned && toned.getAttribute("data-scan-tone")) {
    beep(toned.getAttribute("data-scan-tone"));
    // A reload of the parcel page is not a new scan: drop the marker from the address.
    const url = new URL(window.location.href);
    if (url.searchParams.has("scanned") && window.history.replaceState) {
      url.searchParams.delete("scanned");
      window.history.replaceState(window.history.state, "", url.pathname + url.search + url.hash);
    }
  }

  const form = document.querySelector("form[data-scan-result]");
  if (!form) return;
  const input = form.querySelector("input[name='code']");
  if (input) input.select();

  const button = form.querySelector("[data-camera]");
  const video = form.querySelector("[data-camera-view]");
  const status = form.querySelector("[data-camera-status]");
  if (!button || !video || !input || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) return;
  button.hidden = false;
  const startLabel = button.textContent;
  let camera = null;  // the running (or starting) camera: { live, stop }

  function found(text) {
    beep("ok");
    input.value = text;
    form.submit();
  }

  function stop() {
    if (camera) {
      camera.live = false;
      if (camera.stop) camera.stop();
    }
    camera = null;
    video.hidden = true;
    button.textContent = startLabel;
  }

  function failed() {
    stop();
    beep("bad");
    if (status) status.textContent = form.getAttribute("data-camera-failed") || "";
    input.focus();
  }

  function loadDecoder() {
    if (window.ZXingBrowser) return Promise.resolve(window.ZXingBrowser);
    return new Promise(function (resolve, reject) {
      const script = document.createElement("script");
      script.src = form.getAttribute("data-decoder");
      script.onload = function () {
        if (window.ZXingBrowser) resolve(window.ZXingBrowser);
        else reject(new Error("no decoder"));
      };
      script.onerror = reject;
      document.head.appendChild(script);
    });
  }

  async function withDetector(run) {
    const detector = new window.BarcodeDetector({ formats: ["qr_code", "code_128"] });
    const stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } });
    let timer = null;
    run.stop = function () {
      clearInterval(timer);
      stream.getTracks().forEach(function (t) { t.stop(); });
      video.srcObject = null;
    };
    if (!run.live) return run.stop();
    video.srcObject = stream;
    video.hidden = false;
    await video.play();
    timer = setInterval(async function () {
      const codes = await detector.detect(video).catch(function () { return []; });
      if (codes.length && run.live) {
        stop();
        found(codes[0].rawValue);
      }
    }, 250);
  }

  async function withZXing(run) {
    const ZX = await loadDecoder();
    if (!run.live) return;
    // Every format the decoder knows: in 0.2.1 narrowing it with `possibleFormats` (even to QR
    // alone) makes it find nothing, and our labels are plain QR and Code 128 either way.
    const reader = new ZX.BrowserMultiFormatReader();
    video.hidden = false;
    const controls = await reader.decodeFromVideoDevice(undefined, video, function (result, _err, ctl) {
      if (result && run.live) {
        ctl.stop();
        stop();
        found(result.getText());
      }
    });
    run.stop = function () { controls.stop(); };
    if (!run.live) controls.stop();
  }

  button.addEventListener("click", function () {
    if (camera) {
      stop();
      input.focus();
      return;
    }
    if (status) status.textContent = "";
    button.textContent = button.getAttribute("data-stop-label") || startLabel;
    const run = { live: true, stop: null };
    camera = run;
    const start = "BarcodeDetector" in window ? withDetector : withZXing;
    start(run).catch(function () { if (run.live) failed(); });
  });
})();
