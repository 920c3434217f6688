"""Configuration: the one place where every setting is declared and validated.

``load_config(path)`` reads YAML, validates it with the section models and maps every
validation error back to the YAML line and key that caused it. Nothing else in the
daemon reads YAML or environment for settings. Every model forbids unknown keys, so a
misspelled key is an error, never a silently ignored default: an inspection daemon
fails closed.

The package reads like the config file: ``line``, ``camera``, ``models`` (recipes,
models, rules), ``plc``, ``services`` (pipeline, metrics, logging, archive), ``plant``
(mqtt, opcua), ``hmi`` (the station web page), then ``root`` (the whole file and its
cross-section checks) and ``load`` (YAML → Config).
Import what you need from here.
"""

from __future__ import annotations

from inspector.config.base import Section
from inspector.config.camera import (
    CameraConfig,
    DefectKind,
    FolderCameraConfig,
    GenicamCameraConfig,
    SimCameraConfig,
    SimDefectConfig,
)
from inspector.config.demo import DemoConfig
from inspector.config.hmi import HmiBasicAuthConfig, HmiConfig
from inspector.config.line import LineConfig, TriggerConfig
from inspector.config.load import (
    DEFAULT_CONFIG_PATH,
    config_hash,
    config_schema,
    format_errors,
    load_config,
    parse_config,
    resolve_paths,
)
from inspector.config.models import (
    FAMILIES,
    AnomalyOptions,
    ClassificationOptions,
    DetectionOptions,
    EngineConfig,
    Family,
    ModelConfig,
    OnnxRuntimeOptions,
    Point,
    PreprocessConfig,
    RecipeConfig,
    RulesConfig,
    SegmentationOptions,
    TorchOptions,
)
from inspector.config.plant import MqttConfig, MqttTlsConfig, OpcUaConfig
from inspector.config.plc import PlcConfig
from inspector.config.quality import PresenceConfig, QualityConfig
from inspector.config.root import Config
from inspector.config.services import ArchiveConfig, LoggingConfig, MetricsConfig, PipelineConfig

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "FAMILIES",
    "AnomalyOptions",
    "ArchiveConfig",
    "CameraConfig",
    "ClassificationOptions",
    "Config",
    "DefectKind",
    "DemoConfig",
    "DetectionOptions",
    "EngineConfig",
    "Family",
    "FolderCameraConfig",
    "GenicamCameraConfig",
    "HmiBasicAuthConfig",
    "HmiConfig",
    "LineConfig",
    "LoggingConfig",
    "MetricsConfig",
    "ModelConfig",
    "MqttConfig",
    "MqttTlsConfig",
    "OnnxRuntimeOptions",
    "OpcUaConfig",
    "PipelineConfig",
    "PlcConfig",
    "Point",
    "PreprocessConfig",
    "PresenceConfig",
    "QualityConfig",
    "RecipeConfig",
    "RulesConfig",
    "Section",
    "SegmentationOptions",
    "SimCameraConfig",
    "SimDefectConfig",
    "TorchOptions",
    "TriggerConfig",
    "config_hash",
    "config_schema",
    "format_errors",
    "load_config",
    "parse_config",
    "resolve_paths",
]
