"""Image in, Prediction out: preprocessing, engines (ONNX Runtime, TensorRT), dish and
geometry, landmarks, the Prediction record and pictures of it. No rclpy, no torch."""
