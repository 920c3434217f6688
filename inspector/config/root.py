"""The whole configuration (config.yaml): every section, and the checks across sections."""

from __future__ import annotations

from pydantic import Field, PrivateAttr, model_validator

from inspector.config.base import Section
from inspector.config.camera import CameraConfig
from inspector.config.demo import DemoConfig
from inspector.config.hmi import HmiConfig
from inspector.config.line import LineConfig, TriggerConfig
from inspector.config.models import RecipeConfig
from inspector.config.plant import MqttConfig, OpcUaConfig, check_topic_level
from inspector.config.plc import PlcConfig
from inspector.config.services import ArchiveConfig, LoggingConfig, MetricsConfig, PipelineConfig
from inspector.errors import ConfigError


class Config(Section):
    """The whole daemon configuration (config.yaml)."""

    line: LineConfig = Field(default_factory=LineConfig, description="The line.")
    trigger: TriggerConfig = Field(default_factory=TriggerConfig, description="Part triggers.")
    camera: CameraConfig = Field(default_factory=CameraConfig, description="Camera source.")
    recipes: list[RecipeConfig] = Field(min_length=1, description="Product recipes.")
    default_recipe: int = Field(1, ge=1, description="Recipe in force until the PLC selects one.")
    plc: PlcConfig = Field(default_factory=PlcConfig, description="PLC link.")
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig, description="Pipeline.")
    metrics: MetricsConfig = Field(default_factory=MetricsConfig, description="Metrics.")
    logging: LoggingConfig = Field(default_factory=LoggingConfig, description="Logs.")
    archive: ArchiveConfig = Field(default_factory=ArchiveConfig, description="NG archive.")
    mqtt: MqttConfig = Field(default_factory=MqttConfig, description="Results to MQTT.")
    opcua: OpcUaConfig = Field(default_factory=OpcUaConfig, description="OPC UA server.")
    hmi: HmiConfig = Field(default_factory=HmiConfig, description="Station web page.")
    demo: DemoConfig | None = Field(
        None,
        description="Demo pieces (the embedded PLC simulator). Refused unless the daemon runs "
        "in demo mode: `inspector run --demo`, or the embedded default config.",
    )

    #: ``config_hash`` of the config as written (set by ``parse_config``, before paths
    #: are resolved against the file's directory and before command-line overrides);
    #: kept by ``model_copy``, so neither changes the fingerprint.
    _as_written_hash: str | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _recipes_consistent(self) -> Config:
        ids = [r.id for r in self.recipes]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"recipe ids must be unique; repeated: {dupes}")
        if self.default_recipe not in ids:
            raise ValueError(f"default_recipe {self.default_recipe} is not one of {ids}")
        return self

    @model_validator(mode="after")
    def _demo_consistent(self) -> Config:
        if self.demo is not None and self.demo.plc_simulator and not self.plc.enabled:
            raise ValueError("demo.plc_simulator needs the PLC link: set plc.enabled: true")
        return self

    @model_validator(mode="after")
    def _trigger_consistent(self) -> Config:
        src = self.trigger.source
        if src in ("plc", "camera") and not self.plc.enabled:
            raise ValueError(f"trigger.source '{src}' needs the PLC link: set plc.enabled: true")
        if src == "camera" and not (
            self.camera.type == "genicam" and self.camera.genicam.trigger_mode == "hardware"
        ):
            raise ValueError(
                "trigger.source 'camera' needs camera.type 'genicam' with trigger_mode 'hardware'"
            )
        return self

    @model_validator(mode="after")
    def _mqtt_topics_valid(self) -> Config:
        if self.mqtt.enabled:  # line and station name topic levels
            check_topic_level(self.line.name, "line.name")
            check_topic_level(self.line.station, "line.station")
        return self

    def recipe(self, recipe_id: int) -> RecipeConfig:
        for r in self.recipes:
            if r.id == recipe_id:
                return r
        raise ConfigError(f"unknown recipe id {recipe_id}")
