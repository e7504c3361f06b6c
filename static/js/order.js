// The live check sends the form as plain fields, not the photos themselves (they can be many
// megabytes). Each line's hidden photo_count says how many photos are chosen, so the check
// answers as the submit would. The listener sits on the file input itself, so it runs before
// the change reaches the element that sends the check.
(function () {
  function wire(input) {
    var counter = input.form && input.form.querySelector('input[data-photo-count="' + input.name + '"]');
    if (!counter || input.dataset.counted) return;
    input.dataset.counted = "1";
    input.addEventListener("change", function () {
      counter.value = String(input.files ? input.files.length : 0);
    });
  }
  function wireAll() {
    document.querySelectorAll('form.return-form input[type="file"]').forEach(wire);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", wireAll);
  else wireAll();
})();
