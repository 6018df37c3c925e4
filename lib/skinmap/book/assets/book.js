// Fold every code cell's input behind a small "Show code" button (readers want the figures,
// researchers the code), as Quarto's code-fold does.
document.querySelectorAll(".jp-CodeCell .jp-Cell-inputWrapper").forEach(function (input) {
  var button = document.createElement("button");
  button.className = "skinmap-code-toggle";
  button.type = "button";
  button.textContent = "Show code";
  input.classList.add("skinmap-code-hidden");
  button.addEventListener("click", function () {
    var hidden = input.classList.toggle("skinmap-code-hidden");
    button.textContent = hidden ? "Show code" : "Hide code";
  });
  input.parentNode.insertBefore(button, input);
});
