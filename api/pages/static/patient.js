// Patient page: focus moves to a refused order (shown at the top of the page), and the order
// form's dose fields follow the drug chosen: its guidance (the dose range the pathway checks
// now) is shown under the form, and the dose the state expects is filled in while the
// clinician has not typed one. No script is inline (the Content-Security-Policy forbids it).
(function () {
  var refusal = document.getElementById("refusal");
  if (refusal) {
    refusal.focus();
  }
  var drug = document.getElementById("o-drug");
  var guide = document.getElementById("o-guide");
  if (!drug || !guide) {
    return;
  }
  var fields = {
    mg_per_day: document.getElementById("o-mg"),
    mg_per_kg_day: document.getElementById("o-mgkg"),
  };
  var filled = {};
  Object.keys(fields).forEach(function (unit) {
    filled[unit] = fields[unit].value;
  });
  drug.addEventListener("change", function () {
    var option = drug.options[drug.selectedIndex];
    guide.textContent = option.getAttribute("data-guide") || "";
    var unit = option.getAttribute("data-unit");
    var prefill = option.getAttribute("data-prefill") || "";
    Object.keys(fields).forEach(function (name) {
      var field = fields[name];
      if (field.value === filled[name]) {  // untouched by the clinician: follow the drug
        field.value = name === unit ? prefill : "";
        filled[name] = field.value;
      }
    });
  });
})();
