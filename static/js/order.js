// The guided return's photos and steps.
//
// With this script each photo is sent as soon as it is chosen: phones shrink large photos in the
// browser first (to the 2048 px the portal keeps; the server still decides by content), the
// portal checks and keeps it, and the page shows it with a Remove choice, or says why it was
// refused. Next, Back and a refused submit then never lose it. Without the script the photos
// go with the form to the next step, which keeps them the same way.
//
// When htmx swaps in the next step, the step's heading takes the focus (a screen reader hears
// where the shopper is) and its photo inputs are wired.
(function () {
  var MAX_SIDE = 2048;

  function csrfToken(form) {
    var field = form.querySelector('input[name="csrf_token"]');
    return field ? field.value : "";
  }

  function shrink(file) {
    // A photo larger than we keep is redrawn smaller; anything the browser cannot decode
    // (HEIC on many phones) is sent as it is.
    if (!window.createImageBitmap || !/^image\/(jpeg|png|webp)$/.test(file.type)) return Promise.resolve(file);
    return createImageBitmap(file).then(function (bitmap) {
      var scale = MAX_SIDE / Math.max(bitmap.width, bitmap.height);
      if (scale >= 1) return file;
      var canvas = document.createElement("canvas");
      canvas.width = Math.round(bitmap.width * scale);
      canvas.height = Math.round(bitmap.height * scale);
      canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
      return new Promise(function (resolve) {
        canvas.toBlob(function (blob) {
          resolve(blob ? new File([blob], file.name.replace(/\.\w+$/, "") + ".jpg", {type: "image/jpeg"}) : file);
        }, "image/jpeg", 0.9);
      });
    }).catch(function () { return file; });
  }

  function upload(input, file) {
    var form = input.form;
    var line = input.dataset.line;
    var kept = form.querySelector('[data-kept="' + line + '"]');
    var messages = form.querySelector('[data-messages="' + line + '"]');
    return shrink(file).then(function (sent) {
      var body = new FormData();
      body.append("line_id", line);
      body.append("photo", sent, sent.name || file.name);
      return fetch(input.dataset.uploadUrl, {
        method: "POST", body: body, credentials: "same-origin", headers: {"X-CSRFToken": csrfToken(form)}
      });
    }).then(function (response) {
      return response.text().then(function (html) {
        var holder = document.createElement("div");
        holder.innerHTML = html;
        if (response.ok) {
          while (holder.firstChild) kept.appendChild(holder.firstChild);
          kept.hidden = false;
        } else {
          while (holder.firstChild) messages.appendChild(holder.firstChild);
        }
      });
    });
  }

  function wire(input) {
    if (input.dataset.wired) return;
    input.dataset.wired = "1";
    var direct = input.dataset.uploadUrl && window.fetch && window.FormData;
    input.addEventListener("change", function () {
      var files = Array.prototype.slice.call(input.files || []);
      if (!direct || !files.length) return;
      var messages = input.form.querySelector('[data-messages="' + input.dataset.line + '"]');
      if (messages) messages.innerHTML = "";
      input.value = "";  // the photos are sent now, not with the form
      files.reduce(function (done, file) {
        return done.then(function () { return upload(input, file); });
      }, Promise.resolve());
    });
  }

  function wireAll() {
    document.querySelectorAll('form.return-form input[type="file"]').forEach(wire);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", wireAll);
  else wireAll();
  document.addEventListener("htmx:afterSwap", function (event) {
    if (!event.detail.target || event.detail.target.id !== "wizard") return;
    wireAll();
    var heading = document.querySelector("#wizard .step-title");
    if (heading) {
      heading.focus();
      heading.scrollIntoView({block: "start"});
    }
  });
})();
