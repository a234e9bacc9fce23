"""A glue preference pane (File → Edit preferences → radio-llava) for the plugin's defaults."""

from __future__ import annotations

from qtpy import QtWidgets

from .. import settings


class RadioLlavaPreferences(QtWidgets.QWidget):
    """Model, adapter, device, quantization, max new tokens, temperature, preprocessing profile."""

    def __init__(self, parent=None):
        super().__init__(parent)
        from ..core.profiles import PROFILES

        form = QtWidgets.QFormLayout(self)
        self.model = QtWidgets.QLineEdit(settings.get("RADIOLLAVA_MODEL"))
        self.model.setToolTip("nano (embedded), a model folder, or a hub id org/name")
        self.adapter = QtWidgets.QLineEdit(settings.get("RADIOLLAVA_ADAPTER"))
        self.device = QtWidgets.QComboBox()
        self.device.addItems(["auto", "cpu", "cuda", "mps"])
        self.device.setEditable(True)
        self.device.setCurrentText(settings.get("RADIOLLAVA_DEVICE"))
        self.quantize = QtWidgets.QComboBox()
        self.quantize.addItems(["", "4bit", "8bit"])
        self.quantize.setCurrentText(settings.get("RADIOLLAVA_QUANTIZE"))
        self.max_new_tokens = QtWidgets.QSpinBox()
        self.max_new_tokens.setRange(1, 8192)
        self.max_new_tokens.setValue(settings.get("RADIOLLAVA_MAX_NEW_TOKENS"))
        self.temperature = QtWidgets.QDoubleSpinBox()
        self.temperature.setRange(0.0, 5.0)
        self.temperature.setSingleStep(0.1)
        self.temperature.setValue(settings.get("RADIOLLAVA_TEMPERATURE"))
        self.temperature.setToolTip("0 is greedy decoding")
        self.profile = QtWidgets.QComboBox()
        self.profile.addItems([settings.PROFILE_FROM_MODEL, *PROFILES])
        self.profile.setCurrentText(settings.get("RADIOLLAVA_PROFILE"))
        self.profile.setToolTip("'model' uses the profile saved beside the model (recommended)")
        for label, widget in [("Model", self.model), ("LoRA adapter", self.adapter), ("Device", self.device),
                              ("Quantization", self.quantize), ("Max new tokens", self.max_new_tokens),
                              ("Temperature", self.temperature), ("Preprocessing", self.profile)]:
            form.addRow(label, widget)

    def finalize(self):
        """Called by glue when the preferences dialog is accepted."""
        settings.set("RADIOLLAVA_MODEL", self.model.text().strip() or "nano")
        settings.set("RADIOLLAVA_ADAPTER", self.adapter.text().strip())
        settings.set("RADIOLLAVA_DEVICE", self.device.currentText().strip() or "auto")
        settings.set("RADIOLLAVA_QUANTIZE", self.quantize.currentText())
        settings.set("RADIOLLAVA_MAX_NEW_TOKENS", self.max_new_tokens.value())
        settings.set("RADIOLLAVA_TEMPERATURE", self.temperature.value())
        settings.set("RADIOLLAVA_PROFILE", self.profile.currentText())
